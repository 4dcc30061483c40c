"""``--vocabulary``: the terms file becomes Whisper's prompt, and a bad file is one line."""

from __future__ import annotations

import pytest

from graft.errors import ConfigError
from graft.tasks.transcription.task import vocabulary_prompt


def test_the_terms_are_joined_in_order_and_blank_lines_ignored(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("metoprolol\n\n  Dr. Okonkwo \nbisoprolol\n", encoding="utf-8")
    assert vocabulary_prompt(terms) == "metoprolol, Dr. Okonkwo, bisoprolol."


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\n \n", "no terms"), (b"\xff\xfe\x00bad", "not UTF-8")],
)
def test_an_empty_or_binary_file_is_refused_naming_it(tmp_path, content, message):
    terms = tmp_path / "terms.txt"
    terms.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as raised:
        vocabulary_prompt(terms)
    assert str(terms) in str(raised.value)


def test_a_missing_file_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        vocabulary_prompt(tmp_path / "absent.txt")
