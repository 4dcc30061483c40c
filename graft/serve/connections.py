"""The connections ``graft serve`` keeps (per worker process): at most ``--max-connections``
open at once (one more request is answered 503 by uvicorn, and the connection closed), a
request's headers within :data:`HEADER_TIMEOUT_SECONDS` of the connection opening or of the
previous answer (else the connection is closed: a client that sends a byte a second, or
nothing, cannot hold a connection), headers of at most :data:`MAX_HEADER_BYTES` (else 400),
and idle keep-alive connections closed after :data:`KEEP_ALIVE_SECONDS`.

=====================================  ===========  ==========================================
limit                                  default      answer
=====================================  ===========  ==========================================
open connections (``--max-connections``)  512       503 (uvicorn's ``limit_concurrency``)
seconds to send a request's headers    10 s         connection closed
bytes of a request's headers           16 KiB       400 (h11's ``max_incomplete_event_size``)
seconds an idle keep-alive lasts       5 s          connection closed (``timeout_keep_alive``)
=====================================  ===========  ==========================================
"""

from __future__ import annotations

from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from graft.serve.limits import MAX_CONNECTIONS

#: Seconds a client has to send a request's headers, from connecting or from the last answer.
HEADER_TIMEOUT_SECONDS = 10.0
#: Seconds an idle keep-alive connection is kept (uvicorn's ``timeout_keep_alive``).
KEEP_ALIVE_SECONDS = 5
#: The most bytes of a request's headers (h11's ``max_incomplete_event_size``).
MAX_HEADER_BYTES = 16 * 1024


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header-read timeout: a connection whose request has not
    sent all its headers :attr:`header_timeout` seconds after it opened (or after its previous
    answer, or after its first byte of a next request) is closed."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        """Time the headers while the client has begun no request (h11's IDLE), else not."""
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if not waiting:
            self._stop_timer()
        elif getattr(self, "_header_timer", None) is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _stop_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def connection_options(max_connections: int = MAX_CONNECTIONS) -> dict[str, Any]:
    """The options of ``uvicorn.run`` / ``uvicorn.Config`` that keep the connections above."""
    return {
        "http": f"{__name__}:GuardedH11Protocol",
        "limit_concurrency": max_connections,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
