"""The service locked when it leaves this machine: on any address but a loopback one,
``graft serve`` answers ``/predict``, ``/metrics`` and its API pages only to requests carrying
``Authorization: Bearer TOKEN``; ``/health`` (for orchestrators) and the web page ``/`` (which
asks for the token once) stay open.

The token comes from ``--token-file FILE`` (its first line; a file its group or others may
read or change is refused), else the environment variable
:data:`TOKEN_VARIABLE`, else it is generated at start and written to :data:`DEFAULT_TOKEN_FILE`,
a file only its user can read (mode 0600). ``--no-auth`` serves without a token, said
explicitly and logged as a warning. On a loopback address no token is needed unless one is
given. Tokens are compared in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import stat
from pathlib import Path

from graft.errors import ConfigError
from graft.serve.limits import send_refusal

#: The environment variable that gives the token (a container's ``-e GRAFT_SERVE_TOKEN=...``).
TOKEN_VARIABLE = "GRAFT_SERVE_TOKEN"
#: Where a generated token is written (mode 0600), unless ``--token-file`` names the file.
DEFAULT_TOKEN_FILE = Path("~/.graft/serve-token")
#: The paths answered without a token: the health check and the page that asks for it.
OPEN_PATHS = frozenset({"/health", "/"})
#: The shortest token accepted from a file or the environment.
MIN_TOKEN_LENGTH = 16

log = logging.getLogger("graft.serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or "0.0.0.0"-like wildcard: treat as exposed


def read_token_file(path: Path) -> str:
    """The token held by ``path`` (its first line), refused when missing, empty or short, or
    when the file's mode lets its group or others read or write it (as ssh refuses a key)."""
    try:
        mode = path.expanduser().stat().st_mode
        if os.name == "posix" and mode & 0o077:
            raise ConfigError(
                f"--token-file {path}: other users can read or change it (mode "
                f"{stat.S_IMODE(mode):04o}); make it yours only: chmod 600 {path}"
            )
        text = path.expanduser().read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--token-file {path}: cannot read the token ({error})") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    return _checked(token, f"--token-file {path}")


def _checked(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
        raise ConfigError(
            f"{where}: a token must be at least {MIN_TOKEN_LENGTH} printable characters "
            "without spaces (generate one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    return token


def write_token(path: Path) -> str:
    """A new random token written to ``path``, readable by its user only (0600, the folder
    0700 when made here)."""
    path = path.expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.unlink(missing_ok=True)  # a new file, so the mode below is its mode from the start
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def service_token(
    host: str, token_file: str | os.PathLike | None = None, no_auth: bool = False
) -> tuple[str | None, str]:
    """The token requests must carry (None: none) and a line saying where it comes from.

    ``token_file``: read the token there (else :data:`TOKEN_VARIABLE`); on a non-loopback
    ``host`` with neither, a token is generated into :data:`DEFAULT_TOKEN_FILE`."""
    if no_auth:
        if token_file is not None:
            raise ConfigError("--no-auth and --token-file contradict each other: give one")
        where = "this machine only" if is_loopback(host) else f"anyone who can reach {host}"
        log.warning("serving WITHOUT authentication (--no-auth): %s can use it", where)
        return None, f"no authentication (--no-auth): {where} can use it"
    if token_file is not None:
        return read_token_file(Path(token_file)), f"token from {token_file}"
    if os.environ.get(TOKEN_VARIABLE):
        return _checked(os.environ[TOKEN_VARIABLE].strip(), TOKEN_VARIABLE), (
            f"token from ${TOKEN_VARIABLE}"
        )
    if is_loopback(host):
        return None, "no token needed on a loopback address"
    token = write_token(DEFAULT_TOKEN_FILE)
    path = DEFAULT_TOKEN_FILE.expanduser()
    return token, f"token generated into {path} (readable by you only)"


def _bearer(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
    return None


class BearerAuth:
    """ASGI middleware: every HTTP request but those of :data:`OPEN_PATHS` must carry the
    token, else it is answered 401 with a JSON error and ``WWW-Authenticate: Bearer``."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode("utf-8")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = _bearer(scope.get("headers", []))
        if given is not None and hmac.compare_digest(given, self.token):
            await self.app(scope, receive, send)
            return
        await _refuse(send, given is None)


async def _refuse(send, missing: bool) -> None:
    """The 401 answer of a request without the right token."""
    why = "no token was sent" if missing else "the token is wrong"
    message = (
        f"this service needs its token ({why}): send the header 'Authorization: Bearer TOKEN', "
        "the token being the one graft serve printed the place of at start "
        f"(--token-file, ${TOKEN_VARIABLE}, or {DEFAULT_TOKEN_FILE})"
    )
    await send_refusal(send, 401, message, [(b"www-authenticate", b'Bearer realm="graft"')])
