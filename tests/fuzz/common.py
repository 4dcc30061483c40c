"""What every fuzz test shares: its budget (``GRAFT_FUZZ_EXAMPLES``, 30 cases per test in the
suite; ``scripts/fuzz.sh`` runs 2000), the values that break readers, and the property: a
reader either reads or raises graft's own error, in one line naming the file, quickly."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from graft.errors import GraftError

#: Generated cases per fuzz test (``GRAFT_FUZZ_EXAMPLES=2000`` for the long run).
EXAMPLES = int(os.environ.get("GRAFT_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # shared CPUs: time is bounded by SECONDS below instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 30,  # the suite's run is the same every time
    database=None,  # nothing written beside the repository
)
#: The longest one case may take to read or be refused.
SECONDS = 10.0

NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e308, -0.0, 2**63, 0.5]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12))
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NAMES = st.one_of(
    st.sampled_from(["a.jpg", "../a.jpg", "/etc/passwd", "../../x.png", "nul\x00.jpg", ""]),
    st.text(max_size=20),
)


def reads_or_refuses(
    read: Callable[[], object], file: Path | str, also: tuple[type[BaseException], ...] = ()
) -> object | None:
    """``read()``'s result, or None when it raised a GraftError (or one of ``also``) whose
    message is one line naming ``file``; any other exception, or a slow answer, fails."""
    began = time.monotonic()
    try:
        return read()
    except (GraftError, *also) as error:
        message = str(error)
        if isinstance(error, GraftError):
            assert Path(file).name in message, f"{message!r} does not name {file}"
        assert message and "\n" not in message.strip(), f"not one line: {message!r}"
        return None
    finally:
        assert time.monotonic() - began < SECONDS, "the reader took too long"
