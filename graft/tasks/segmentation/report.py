"""Segmentation on paper: mask files and overlays for ``graft predict --out``, and the report's
sections of a segmentation run: IoU and Dice per class, the confusion between classes at pixel
level, and the validation images of lowest IoU with their true and predicted masks side by
side, worst first."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from graft.report.html import escape as _e
from graft.report.html import figure as _figure
from graft.report.html import number as _number

#: Width in pixels of each picture of the worst images.
PICTURE_WIDTH = 240


def write_masks(
    items: Sequence[str],
    masks: Sequence[np.ndarray],
    folder: Path,
    colors: Sequence,
    overlay: bool = False,
) -> list[dict[str, str]]:
    """Write each image's mask to ``folder`` as a palette PNG named after the image (and, with
    ``overlay``, the image with its mask blended, ``NAME_overlay.png``); an existing file is
    never replaced (a number is added). The paths written, per image."""
    from graft.data.images import open_rgb
    from graft.tasks.segmentation.masks import free_path, mask_image
    from graft.tasks.segmentation.masks import overlay as blend

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item, mask in zip(items, masks, strict=True):
        stem = Path(item).stem
        files = {"mask": free_path(folder, stem)}
        mask_image(mask, colors).save(files["mask"])
        if overlay:
            files["overlay"] = free_path(folder, f"{stem}_overlay")
            blend(open_rgb(item), mask, colors).save(files["overlay"])
        written.append({name: str(path) for name, path in files.items()})
    return written


def segmentation_sections(metrics: dict, classes: list[str], split: str) -> list[str]:
    """The sections of one split's segmentation metrics."""
    if "per_class" not in metrics:
        return []
    return [
        _per_class(metrics, split),
        _confusion(metrics, classes, split),
        _worst(metrics, split),
    ]


def _per_class(metrics: dict, split: str) -> str:
    header = (
        "<tr><th>class</th><th>IoU</th><th>Dice</th><th>true pixels</th>"
        "<th>predicted pixels</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td class='n'>{_number(row['iou'])}</td>"
        f"<td class='n'>{_number(row['dice'])}</td><td class='n'>{row['pixels']:,}</td>"
        f"<td class='n'>{row['predicted']:,}</td></tr>"
        for name, row in metrics["per_class"].items()
    )
    summary = (
        f"mean IoU <b>{metrics['mean_iou']:.4f}</b>, mean Dice {metrics['mean_dice']:.4f}, "
        f"pixel accuracy {metrics['pixel_accuracy']:.4f} over {metrics['num_examples']} images "
        "(pixels of all images together; the ignore index left out)"
    )
    title = f"<h2>IoU and Dice per class ({_e(split)})</h2>"
    return f"{title}<p>{summary}</p><table>{header}{rows}</table>"


def _confusion(metrics: dict, classes: list[str], split: str) -> str:
    matrix = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(classes) + 2)

    def draw(figure):
        axes = figure.subplots()
        shown = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        axes.set_yticks(range(len(classes)), classes)
        axes.set(xlabel="predicted", ylabel="true")
        if len(classes) <= 20:
            for (i, j), share in np.ndenumerate(shares):
                colour = "white" if share > 0.5 else "black"
                axes.text(j, i, f"{share:.1%}", ha="center", va="center", color=colour, fontsize=8)
        figure.colorbar(shown, ax=axes, label="share of the true class's pixels")

    return (
        f"<h2>Confusion between classes, by pixel ({_e(split)})</h2><p class='muted'>each row: "
        "where the pixels of a true class went.</p>" + _figure(draw, size + 1.5, size)
    )


def _worst(metrics: dict, split: str) -> str:
    worst = metrics.get("worst") or []
    if not worst:
        return ""
    width = f"width:{3 * PICTURE_WIDTH + 30}px"
    cards = [
        f"<div class='card' style='{width}'><div>{_picture(row['image'])}"
        f"{_mask(row['truth'], 'true mask')}{_mask(row['predicted'], 'predicted mask')}</div>"
        f"<div>{_e(Path(row['image']).name)}: mean IoU {row['mean_iou']:.4f}</div></div>"
        for row in worst
    ]
    return (
        f"<h2>Images of lowest IoU ({_e(split)})</h2><p class='muted'>the image, its true "
        "mask and the predicted mask, worst first.</p>"
        f"<div class='grid'>{''.join(cards)}</div>"
    )


def _mask(uri: str, title: str) -> str:
    return (
        f"<img alt='{_e(title)}' title='{_e(title)}' src='{uri}' "
        f"style='width:{PICTURE_WIDTH}px;image-rendering:pixelated;display:inline-block'>"
    )


def _picture(path: str) -> str:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
    except OSError:
        return "<span class='muted'>(image no longer readable)</span>"
    image.thumbnail((PICTURE_WIDTH, PICTURE_WIDTH * 4))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f"<img alt='image' src='data:image/jpeg;base64,{encoded}' "
        f"style='width:{PICTURE_WIDTH}px;display:inline-block'>"
    )
