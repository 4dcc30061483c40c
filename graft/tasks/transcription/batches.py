"""Batches of speech: waveforms decoded and resampled, the model's input features, and the
transcripts as token ids.

Each clip is decoded with soundfile (:func:`graft.data.audio.decode_audio`: mono, resampled to
16 kHz). A batch holds the processor's features (Whisper: 80-bin log-mel spectrograms of
30-second windows; a CTC model: normalised waveforms, padded, with their mask), whether each
clip is silence (its transcript is then empty, not a model's hallucination), and as targets
the transcripts' token ids (padding ``-100``, the loss ignores it; Whisper's
``<|startoftranscript|>`` left out, the model prepends it) with the texts themselves. A batch
to predict (no transcripts) holds each clip's length in seconds (``duration``: the timing of
``graft predict --json`` and the end of its word alignment) instead of targets.

A transcript written all in capitals (as many corpora's are: ``SO OF COURSE I WAS PICKED ON``)
trains in sentence case, the case the pretrained model writes (scoring normalises case away).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from graft.tasks.transcription.model import SAMPLE_RATE, processor_of
from graft.tasks.transcription.read import SILENCE_PEAK

#: The fields of a batch that describe its clips rather than feed the model: whether each
#: is silence, and (a batch to predict) its length in seconds.
CLIP_FIELDS = ("silent", "duration")
#: Tokens of a transcript at most (Whisper's decoder reads 448 positions).
MAX_LABEL_TOKENS = 440


def training_text(text: str) -> str:
    """``text`` as the model learns it: an all-capitals transcript in sentence case."""
    if text.isupper():
        text = text.lower()
        return text[:1].upper() + text[1:]
    return text


class ClipsDataset(Dataset):
    """Each clip's waveform (float32, 16 kHz) with its transcript (None without one)."""

    def __init__(self, paths: list[str], texts: list[str] | None):
        self.paths, self.texts = list(paths), texts

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, str | None]:
        from graft.data.audio import UnreadableAudio, decode_audio
        from graft.errors import DataError

        try:
            wave = decode_audio(self.paths[index], SAMPLE_RATE).numpy()
        except UnreadableAudio as error:
            raise DataError(f"{self.paths[index]}: {error}") from None
        return wave, None if self.texts is None else self.texts[index]


class SpeechCollate:
    """A list of :class:`ClipsDataset` items as ``(inputs, targets)`` (see the module
    docstring); picklable (the processor is found again by the model string)."""

    def __init__(self, spec: str):
        self.spec = spec

    def __call__(self, items: list) -> tuple[dict, Any]:
        processor = processor_of(self.spec)
        waves = [wave for wave, _ in items]
        extractor = processor.feature_extractor
        silent = torch.tensor([float(np.abs(w).max(initial=0.0)) < SILENCE_PEAK for w in waves])
        seq2seq = type(extractor).__name__.startswith("Whisper")
        if seq2seq:
            features = extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            inputs = {"input_features": features.input_features}
        else:
            features = extractor(
                waves,
                sampling_rate=SAMPLE_RATE,
                return_tensors="pt",
                padding=True,
                return_attention_mask=True,
            )
            inputs = {"input_values": features.input_values}
            if "attention_mask" in features:
                inputs["attention_mask"] = features.attention_mask
        inputs["silent"] = silent
        texts = [text for _, text in items]
        if any(text is None for text in texts):  # predicting: each clip's seconds too
            inputs["duration"] = torch.tensor([len(w) / SAMPLE_RATE for w in waves])
            return inputs, torch.full((len(items),), -1)
        labels = self.labels(processor, texts, seq2seq)
        return inputs, {"labels": labels, "texts": texts}

    def labels(self, processor: Any, texts: list[str], seq2seq: bool) -> torch.Tensor:
        """Whisper's transcripts as :func:`training_text`, a CTC vocabulary's as written."""
        tokenizer = processor.tokenizer
        shown = [training_text(t) for t in texts] if seq2seq else texts
        encoded = [
            tokenizer(t, truncation=True, max_length=MAX_LABEL_TOKENS).input_ids for t in shown
        ]
        start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        if isinstance(start, int) and start != tokenizer.unk_token_id:
            encoded = [ids[1:] if ids and ids[0] == start else ids for ids in encoded]
        longest = max(len(ids) for ids in encoded)
        labels = torch.full((len(encoded), longest), -100, dtype=torch.long)
        for row, ids in enumerate(encoded):
            labels[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return labels
