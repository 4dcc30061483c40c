"""A pretrained speech model scored as it is: ``graft evaluate MODEL DATA --task
transcription`` (``MODEL``: the name a fit's ``--model`` takes), so that a user sees what
fine-tuning buys; the benchmark's zero-shot figure."""

from __future__ import annotations

import time
from typing import Any


def transcribe_clips(
    backbone: Any, paths: list[str], batch_size: int = 8, beams: int = 1, prompt: str | None = None
) -> list[dict]:
    """Each clip's transcript with the seconds its batch took per clip, in order."""
    import torch
    from torch.utils.data import DataLoader

    from graft.tasks.transcription.batches import ClipsDataset, SpeechCollate
    from graft.tasks.transcription.module import transcribe

    loader = DataLoader(
        ClipsDataset(paths, None), batch_size=batch_size, collate_fn=SpeechCollate(backbone.spec)
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone.whole.to(device).eval()
    found: list[dict] = []
    with torch.inference_mode():
        for inputs, _ in loader:
            start = time.perf_counter()
            inputs = {k: v.to(device) for k, v in inputs.items()}
            texts = transcribe(backbone, inputs, beams, prompt)
            seconds = (time.perf_counter() - start) / max(1, len(texts))
            found.extend({"transcript": t, "seconds": round(seconds, 4)} for t in texts)
    backbone.whole.cpu()
    return found


def evaluate_model(
    spec: str, data: Any, normalize: bool = True, beams: int = 1, batch_size: int = 8
) -> dict:
    """The metrics of the pretrained model ``spec`` on labelled ``data`` (a folder's test
    split, else its validation or only one)."""
    from graft.tasks.transcription.metrics import transcription_metrics
    from graft.tasks.transcription.model import build_encoder
    from graft.tasks.transcription.read import read_speech_splits

    train, val, test = read_speech_splits(data)
    labelled = test or val or train
    backbone = build_encoder(spec, pretrained=True)
    start = time.perf_counter()
    found = transcribe_clips(backbone, labelled.paths, batch_size, beams)
    hypotheses = [f["transcript"] for f in found]
    metrics = transcription_metrics(
        labelled.texts, hypotheses, labelled.speakers, normalize, labelled.paths
    )
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    metrics["model"] = spec
    return metrics
