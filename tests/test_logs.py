"""A log line naming a file whose name is not valid UTF-8 still encodes."""

from __future__ import annotations

import logging

import graft  # noqa: F401  (installs the filter)


def test_a_name_with_undecodable_bytes_is_logged_escaped(caplog):
    name = b"photo-\xff.jpg".decode("utf-8", "surrogateescape")
    with caplog.at_level(logging.WARNING, logger="graft"):
        logging.getLogger("graft").warning("skipped %s: unreadable", name)
    message = caplog.records[-1].getMessage()
    assert message == "skipped photo-\\udcff.jpg: unreadable"
    message.encode("utf-8")  # no UnicodeEncodeError
