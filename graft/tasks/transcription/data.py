"""Audio clips with their transcripts: a transcription fit's data.

:class:`SpeechData` holds, for each utterance, its audio file, its reference transcript and its
speaker (when the data name one), with the file and line each was read from (for messages).
The readers (:mod:`graft.tasks.transcription.read`) skip an utterance whose transcript is empty
or whose audio cannot be read, and list it in ``skipped`` (``summary.json`` counts them).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class SpeechData:
    """Utterances: audio files and their transcripts.

    Attributes:
        paths: each utterance's audio file (absolute).
        texts: each utterance's reference transcript (as written in the data).
        speakers: each utterance's speaker, or empty when the data name none.
        source: where the data were read from (for messages).
        lines: each utterance's file and line (``metadata.csv:12``), for messages.
        skipped: ``(file or line, reason)`` of each utterance left out.
    """

    paths: list[str]
    texts: list[str]
    speakers: list[str] = field(default_factory=list)
    source: str = "utterances"
    lines: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    modality: ClassVar[str] = "audio"
    task: ClassVar[str] = "transcription"
    classes: ClassVar[list[str]] = []

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def items(self) -> list[str]:
        return list(self.paths)

    @property
    def labels(self) -> list[str]:
        return self.texts

    def content_hash(self) -> str:
        """SHA-256 over the file names, transcripts and speakers."""
        digest = hashlib.sha256()
        speakers = self.speakers or [""] * len(self)
        for row in zip(self.paths, self.texts, speakers, strict=True):
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        return digest.hexdigest()

    def subset(self, indices) -> SpeechData:
        chosen = [int(i) for i in indices]
        return SpeechData(
            paths=[self.paths[i] for i in chosen],
            texts=[self.texts[i] for i in chosen],
            speakers=[self.speakers[i] for i in chosen] if self.speakers else [],
            source=self.source,
            lines=[self.lines[i] for i in chosen] if self.lines else [],
            skipped=list(self.skipped),
        )

    def speaker_counts(self) -> dict[str, int]:
        return dict(Counter(self.speakers))

    def class_counts(self) -> dict:
        return {}

    def duplicates(self) -> dict:
        copies = len(self.paths) - len(set(self.paths))
        return {"extra_copies": copies, "conflicting_labels": 0}

    def content_keys(self) -> list[str]:
        return list(self.paths)
