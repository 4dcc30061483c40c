"""Drawing detections: images with their boxes (and masks), for ``graft predict --draw`` and the
report, and the report's sections of a detection run: AP per class and by object size, the
precision-recall curve of each class, and the validation images with the most errors drawn
with their true and predicted boxes, worst first."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from graft.report.html import escape as _e
from graft.report.html import figure as _figure
from graft.report.html import number as _number

#: Colours of the boxes: the truth, and the detections.
TRUE_COLOUR, FOUND_COLOUR = (0, 170, 0), (220, 30, 30)
#: Width in pixels of the report's drawings of the worst images.
REPORT_WIDTH = 360


def draw_boxes(image: Any, truth: list, found: list, classes: list[str], masks: list | None = None):
    """``image`` (PIL, RGB) with ``truth`` boxes (``[x1, y1, x2, y2, label]``, green) and
    ``found`` detections (``[x1, y1, x2, y2, label, score]``, red, with class and score) drawn,
    and ``masks`` (COCO RLE, one per detection) tinted."""
    from PIL import Image, ImageDraw

    image = image.convert("RGB")
    if masks:
        from graft.data.annotations.target import decode_masks

        tint = Image.new("RGB", image.size, FOUND_COLOUR)
        area = decode_masks(masks, image.height, image.width).max(axis=0) * 110
        image = Image.composite(tint, image, Image.fromarray(area.astype("uint8"), "L"))
    pen = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    for *box, _label in truth:
        pen.rectangle(box, outline=TRUE_COLOUR, width=width)
    for *box, label, score in found:
        pen.rectangle(box, outline=FOUND_COLOUR, width=width)
        text = f"{classes[int(label)]} {score:.2f}"
        left, top = box[0], max(0.0, box[1] - 12)
        pen.rectangle(pen.textbbox((left, top), text), fill=FOUND_COLOUR)
        pen.text((left, top), text, fill=(255, 255, 255))
    return image


def draw_records(items: list[str], records: list[dict], folder: Path, classes: list[str]):
    """Write each input image with its predicted boxes to ``folder`` (as PNG, named after the
    image; an existing file is never replaced: a number is added); the paths written."""
    from graft.data.images import open_rgb

    folder.mkdir(parents=True, exist_ok=True)
    position = {name: i for i, name in enumerate(classes)}
    written = []
    for item, record in zip(items, records, strict=True):
        found = [[*a["box"], position[a["label"]], a["score"]] for a in record["predictions"]]
        masks = [a["mask"] for a in record["predictions"] if "mask" in a] or None
        drawn = draw_boxes(open_rgb(item), [], found, classes, masks)
        target = _free_name(folder, Path(item).stem)
        drawn.save(target)
        written.append(target)
    return written


def _free_name(folder: Path, stem: str) -> Path:
    target, number = folder / f"{stem}.png", 1
    while target.exists():
        number += 1
        target = folder / f"{stem}-{number}.png"
    return target


def detection_sections(metrics: dict, classes: list[str], split: str) -> list[str]:
    """The sections of one split's detection metrics."""
    if "per_class" not in metrics:
        return []
    return [_ap_table(metrics, split), _pr_curves(metrics, split), _worst(metrics, classes, split)]


def _ap_table(metrics: dict, split: str) -> str:
    masks = any("mask_ap" in row for row in metrics["per_class"].values())
    keys = ["ap", "ap_50", "ap_75", "ap_small", "ap_medium", "ap_large"]
    keys += ["mask_ap", "mask_ap_50"] if masks else []
    names = {"ap": "AP", "ap_50": "AP@.5", "ap_75": "AP@.75", "mask_ap": "mask AP"}
    names.update({"mask_ap_50": "mask AP@.5"})
    header = "".join(f"<th>{names.get(k, k.replace('ap_', 'AP '))}</th>" for k in keys)
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td class='n'>{row.get('objects', 0)}</td>"
        + "".join(f"<td class='n'>{_number(row.get(k))}</td>" for k in keys)
        + "</tr>"
        for name, row in metrics["per_class"].items()
    )
    sizes = ", ".join(
        f"{size} {_number(metrics.get(f'map_{size}'))}" for size in ("small", "medium", "large")
    )
    return (
        f"<h2>Average precision per class and object size ({_e(split)})</h2><p>box mAP by "
        f"object size (COCO: small under 32², medium under 96² pixels): {_e(sizes)}</p>"
        f"<table><tr><th>class</th><th>objects</th>{header}</tr>{rows}</table>"
    )


def _pr_curves(metrics: dict, split: str) -> str:
    curves = metrics.get("pr_curves") or {}
    if not curves:
        return ""

    def draw(figure):
        axes = figure.subplots()
        for name, curve in list(curves.items())[:12]:
            for key, style in (("precision_50", "-"), ("precision_75", "--")):
                points = [
                    (r, p) for r, p in zip(curve["recall"], curve[key], strict=True) if p >= 0
                ]
                if points:
                    label = f"{name} (IoU .{key[-2:]})"
                    axes.plot(*zip(*points, strict=True), style, label=label)
        axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
        axes.legend(fontsize=7, loc="lower left")

    return f"<h2>Precision-recall per class ({_e(split)})</h2>{_figure(draw, 6, 4.2)}"


def _worst(metrics: dict, classes: list[str], split: str) -> str:
    worst = metrics.get("worst") or []
    if not worst:
        return ""
    cards = []
    for row in worst:
        cards.append(
            f"<div class='card' style='width:{REPORT_WIDTH + 10}px'>{_drawing(row, classes)}"
            f"<div>{_e(Path(row['image']).name)}: {row['false']} false, {row['missed']} missed"
            "</div></div>"
        )
    return (
        f"<h2>Images with the most errors ({_e(split)})</h2><p class='muted'>true boxes green, "
        "detections red (score at least 0.3); errors counted at score 0.5 and IoU .5.</p>"
        f"<div class='grid'>{''.join(cards)}</div>"
    )


def _drawing(row: dict, classes: list[str]) -> str:
    from PIL import Image, ImageOps

    try:
        with Image.open(row["image"]) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
    except OSError:
        return "<div class='muted'>(image no longer readable)</div>"
    drawn = draw_boxes(image, row["truth"], row["detections"], classes)
    drawn.thumbnail((REPORT_WIDTH, REPORT_WIDTH))
    buffer = io.BytesIO()
    drawn.save(buffer, format="JPEG", quality=85)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/jpeg;base64,{encoded}">'
