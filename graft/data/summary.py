"""What a fit's ``summary.json`` says of its data: counts, skipped inputs, repeated inputs,
inputs shared between splits, and texts (audio clips) cut to the backbone's length."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("graft")


def data_summary(splits: Any, backbone: Any, task: str) -> dict:
    """The data part of a fit's summary (:class:`graft.data.DataSplits`, the backbone that
    read them, the kind of task)."""
    parts = splits.parts()
    skipped = {n: p.skipped for n, p in parts.items() if p.skipped}
    summary = {
        "modality": splits.train.modality,
        "task": task,
        "examples": {n: len(p) for n, p in parts.items()},
        "class_counts": {n: p.class_counts() for n, p in parts.items()},
        "skipped": {n: [{"input": w, "reason": r} for w, r in s] for n, s in skipped.items()},
        "skipped_count": sum(len(s) for s in skipped.values()),
        "duplicates": duplicates(parts),
    }
    if backbone.modality == "text":
        summary["truncated_texts"] = truncated(parts, backbone.preprocessing)
    if backbone.modality == "audio":
        summary["cropped_clips"] = cropped(parts, backbone.preprocessing)
    return summary


def duplicates(parts: dict[str, Any]) -> dict:
    """Repeated inputs within each split, and inputs of val or test that are also in train
    (which inflate their scores), logged when there are any."""
    report = {name: part.duplicates() for name, part in parts.items()}
    train_keys = set(parts["train"].content_keys())
    for name in ("val", "test"):
        if name in parts:
            shared = sum(key in train_keys for key in parts[name].content_keys())
            report[name]["also_in_train"] = shared
    for name, found in report.items():
        extra, leaked = found["extra_copies"], found.get("also_in_train", 0)
        if extra or leaked:
            log.warning(
                "%s data: %d repeated input(s) (%d with different labels)%s",
                name,
                extra,
                found["conflicting_labels"],
                f", {leaked} also in the training data" if leaked else "",
            )
    return report


def cropped(parts: dict[str, Any], preprocessing: Any) -> dict:
    """How many audio clips of each split are longer than the backbone's clip length (cropped:
    at random offsets in training, around their centre otherwise), from the files' headers,
    logged when any are."""
    from graft.backbones.audio.preprocessing import audio_duration

    limit = preprocessing.clip_seconds + 0.5 / preprocessing.sample_rate
    counts = {
        name: sum(audio_duration(item) > limit for item in part.items)
        for name, part in parts.items()
    }
    if any(counts.values()):
        log.info(
            "audio clips longer than %.2f s were cropped to that length: %s",
            preprocessing.clip_seconds,
            ", ".join(f"{n} {c} of {len(parts[n])}" for n, c in counts.items()),
        )
    return {"clip_seconds": preprocessing.clip_seconds, **counts}


def truncated(parts: dict[str, Any], preprocessing: Any) -> dict:
    """How many texts of each split are longer than the backbone reads (cut to
    ``max_length`` tokens), logged when any are."""
    from graft.data.transforms import token_counts

    counts = {}
    for name, part in parts.items():
        lengths = token_counts(list(part.items), preprocessing, cut=False)
        counts[name] = sum(length > preprocessing.max_length for length in lengths)
    if any(counts.values()):
        log.warning(
            "texts longer than %d tokens were cut to that length: %s",
            preprocessing.max_length,
            ", ".join(f"{n} {c} of {len(parts[n])}" for n, c in counts.items()),
        )
    return {"max_length": preprocessing.max_length, **counts}
