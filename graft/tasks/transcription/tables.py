"""The tables ``graft fit`` and ``graft evaluate`` print of a transcription's metrics."""

from __future__ import annotations

from graft.tasks.base import MetricsTable
from graft.tasks.transcription.metrics import before_after

#: The worst utterances printed (the report shows all that the metrics keep).
SHOWN = 5


def metrics_tables(metrics: dict, title: str) -> list[MetricsTable]:
    """Error rates (and the pretrained model's, when a fit measured it), per speaker, and
    the worst utterances."""
    rows = [[name.upper(), f"{metrics[name]:.4f}"] for name in ("wer", "cer") if name in metrics]
    for name in ("words", "utterances", "substitutions", "deletions", "insertions"):
        if name in metrics:
            rows.append([name, str(metrics[name])])
    rows.append(["normalised", "yes" if metrics.get("normalized", True) else "no"])
    compared = before_after(metrics)
    if compared:  # the pretrained and the fitted model on the same validation clips
        for model in ("pretrained", "fitted"):
            rows.append([f"{model} WER ({compared['split']})", f"{compared[model]['wer']:.4f}"])
    tables = [MetricsTable(title, ["metric", "value"], rows, left=("metric",))]
    speakers = metrics.get("per_speaker") or {}
    if speakers:
        tables.append(
            MetricsTable(
                f"{title}: per speaker",
                ["speaker", "WER", "CER", "utterances"],
                [
                    [s, f"{m['wer']:.4f}", f"{m['cer']:.4f}", str(m["utterances"])]
                    for s, m in speakers.items()
                ],
                left=("speaker",),
            )
        )
    worst = metrics.get("worst") or []
    if worst:
        tables.append(
            MetricsTable(
                f"{title}: worst utterances (normalised)",
                ["WER", "reference", "hypothesis"],
                [[f"{w['wer']:.2f}", w["reference"], w["hypothesis"]] for w in worst[:SHOWN]],
                left=("reference", "hypothesis"),
            )
        )
    return tables
