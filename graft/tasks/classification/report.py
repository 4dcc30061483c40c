"""The report's sections of a classification: the confusion matrix, per-class precision,
recall and F1, the reliability diagram with the expected calibration error, and the most
confidently wrong examples (thumbnails, spectrograms of audio clips, or the text)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from graft.report.html import escape as _e
from graft.report.html import figure as _figure
from graft.report.html import number as _number
from graft.tasks.capabilities import Reported

THUMBNAIL_PIXELS = 112


def classification_sections(
    values: dict, classes: list[str], split: str, modality: str | None
) -> list[str]:
    """The sections of one split's (or one task's) classification metrics."""
    if "confusion_matrix" not in values:
        return []
    return [
        _confusion(values, classes, split),
        _per_class(values, split),
        _calibration(values, split),
        _errors(values, split, modality),
    ]


def _confusion(values: dict, classes: list[str], split: str) -> str:
    import numpy as np

    matrix = np.asarray(values["confusion_matrix"])
    size = max(4.0, 0.5 * len(classes) + 2)

    def draw(figure):
        axes = figure.subplots()
        shown = axes.imshow(matrix, cmap="Blues")
        axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        axes.set_yticks(range(len(classes)), classes)
        axes.set(xlabel="predicted", ylabel="true")
        if len(classes) <= 20:
            for (i, j), count in np.ndenumerate(matrix):
                colour = "white" if count > matrix.max() / 2 else "black"
                axes.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=8)
        figure.colorbar(shown, ax=axes)

    return f"<h2>Confusion matrix ({_e(split)})</h2>{_figure(draw, size + 1, size)}"


def _per_class(values: dict, split: str) -> str:
    header = "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
    rows = "".join(
        f"<tr><td>{_e(name)}</td>"
        + "".join(f"<td class='n'>{_number(row[k])}</td>" for k in ("precision", "recall", "f1"))
        + f"<td class='n'>{row['support']}</td></tr>"
        for name, row in values["per_class"].items()
    )
    return f"<h2>Per class ({_e(split)})</h2><table>{header}{rows}</table>"


def _calibration(values: dict, split: str) -> str:
    if "calibration" not in values:
        return ""
    calibration = values["calibration"]
    filled = [b for b in calibration["bins"] if b["count"]]

    def draw(figure):
        axes = figure.subplots()
        axes.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
        centres = [(b["low"] + b["high"]) / 2 for b in filled]
        axes.bar(
            centres,
            [b["accuracy"] for b in filled],
            width=0.09,
            alpha=0.7,
            label="accuracy of the bin",
        )
        axes.plot(
            [b["confidence"] for b in filled],
            [b["accuracy"] for b in filled],
            "o-",
            color="darkred",
            label="mean confidence vs accuracy",
        )
        axes.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top-class probability)",
            ylabel="accuracy",
            title=f"expected calibration error {calibration['ece']:.4f}",
        )
        axes.legend(fontsize=7, loc="upper left")

    return (
        f"<h2>Calibration ({_e(split)})</h2><p>Expected calibration error "
        f"<b>{calibration['ece']:.4f}</b> over {len(calibration['bins'])} equal-width bins "
        f"(0: the top-class probability is the accuracy).</p>{_figure(draw, 5, 4.2)}"
    )


def _errors(values: dict, split: str, modality: str | None) -> str:
    errors = values.get("confident_errors")
    if not errors:
        return ""
    cards = []
    for error in errors:
        shown = _media_thumbnail(error["item"], modality)
        text = Path(error["item"]).name if modality in ("image", "audio") else error["item"]
        cards.append(
            f"<div class='card'>{shown}<div>{_e(text)}</div><div>true <b>{_e(error['label'])}"
            f"</b>, predicted <b>{_e(error['predicted'])}</b> ({error['probability']:.3f})</div>"
            "</div>"
        )
    return f"<h2>Most confidently wrong ({_e(split)})</h2><div class='grid'>{''.join(cards)}</div>"


def _media_thumbnail(path: str, modality: str | None) -> str:
    """A thumbnail of an image, a spectrogram of an audio clip, nothing for a text."""
    if modality == "audio":
        from graft.report.spectrogram import spectrogram_thumbnail

        return spectrogram_thumbnail(path)
    return _thumbnail(path) if modality == "image" else ""


def _thumbnail(path: str) -> str:
    """A small JPEG of the image at ``path`` as a data URI, or a note when it is gone."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
    except OSError:
        return "<div class='muted'>(image no longer readable)</div>"
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/jpeg;base64,{encoded}">'


class TasksReport(Reported):
    """What the report shows of several tasks on one backbone: each task's metrics and
    classification sections, titled with the task, and the tasks with the weights of their
    losses (mixed into :class:`graft.tasks.classification.multitask.MultiTask`)."""

    @classmethod
    def metric_parts(cls, name: str, metrics: dict) -> list[tuple[str, dict]]:
        return [(f"{name}, task {task}", values) for task, values in metrics.items()]

    @classmethod
    def overview(cls, record: dict) -> list[tuple[str, str]]:
        """The tasks and the weights of their losses."""
        weighting = record.get("weighting", {})
        weights = weighting.get("weights", {})
        mode = "learned by uncertainty" if weighting.get("mode") == "uncertainty" else "fixed"
        return [
            ("tasks", ", ".join(f"{t['name']} ({t['kind']})" for t in record.get("tasks", []))),
            (f"loss weights ({mode})", ", ".join(f"{k} {v:.4f}" for k, v in weights.items())),
        ]

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None):
        """Each classification task's sections, titled with the task."""
        sections = []
        for name, values in metrics.items():
            title = f"{split}, task {name}"
            sections += classification_sections(values, classes[name], title, modality)
        return sections
