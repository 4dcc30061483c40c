"""Export of a detection model to ONNX, with its parity checked on boxes and scores.

The whole torchvision detector goes into one graph, from an image (float ``[3, H, W]`` in
[0, 1], any size) to its detections: the resize and normalisation of its transform, the
backbone, the feature pyramid, the proposals and their non-maximum suppression, the box (and
mask) heads, and the boxes mapped back to the image's pixels. torchvision's detectors export
through the TorchScript-based exporter (``dynamo=False``, opset 17), one image per call; the
``torch.export``-based exporter does not take their data-dependent control flow. TorchScript
export is refused (the detectors script, but not as graft assembles them).

Before the folder is written the exported model runs on real images of several sizes: every
detection the PyTorch model scores at least :data:`PARITY_MIN_SCORE` must come out of ONNX
Runtime with the same class, a score within :data:`SCORE_TOLERANCE` and a box within
:data:`BOX_TOLERANCE` pixels, or nothing is written (:class:`~graft.export.engine.ExportError`).

:class:`DetectionEngine` runs such an export for ``graft predict --engine onnx`` and
``graft.load(RUN, engine="onnx")``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graft.errors import ConfigError, RunError
from graft.export.engine import ExportError, model_hash, publish
from graft.export.exporter import export_versions, exporter_errors

#: Detections compared by the parity check: those the PyTorch model scores at least this.
PARITY_MIN_SCORE = 0.1
#: Largest differences accepted: box corners in pixels, and scores.
BOX_TOLERANCE, SCORE_TOLERANCE = 0.05, 1e-3
#: Real images compared by the parity check.
PARITY_IMAGES = 8
OPSET = 17


class DetectorGraph(nn.Module):
    """Backbone and detection head as one module from an image to (boxes, labels, scores[,
    masks]), as the exporter takes it."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, image: torch.Tensor):
        self.head.attach(self.backbone)
        found = self.head([image])[0]
        outputs = (found["boxes"], found["labels"], found["scores"])
        return (*outputs, found["masks"]) if "masks" in found else outputs


def export_detection(model: Any, items: list[str], out: Path, format: str) -> dict:
    """Export fitted detection ``model`` to ``out`` (a folder, which must not exist or be an
    earlier export), checked on ``items`` (image paths); the ``export.json`` record."""
    if format != "onnx":
        raise ConfigError(f"a {model.fitted_task_.kind} model exports to ONNX only (--format onnx)")
    images = [image for image, _ in model.fitted_task_.dataset(items[:PARITY_IMAGES], None)]
    module = DetectorGraph(model.backbone_, model.head_).cpu().eval()
    masks = model.fitted_task_.masks
    names = ["boxes", "labels", "scores"] + (["masks"] if masks else [])
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    building.chmod(0o755)
    try:
        start = time.perf_counter()
        _write(module, images[0], names, building / "model.onnx")
        seconds = time.perf_counter() - start
        engine = DetectionEngine.open(building / "model.onnx", masks)
        parity = _parity(module, engine, images)
        record = {
            "format": "onnx",
            "file": "model.onnx",
            "inputs": ["image"],
            "outputs": names,
            "dynamic": {"image": ["height", "width"], "detections": ["n"]},
            "classes": list(model.classes_),
            "task": model.fitted_task_.export_record(),
            "backbone": model.backbone_.spec,
            "preprocessing": model.backbone_.preprocessing.to_dict(),
            "parity": {**parity, "inputs": len(images)},
            "export_seconds": round(seconds, 3),
            "model_sha256": model_hash(getattr(model, "run_dir_", None)),
            "versions": export_versions(),
        }
        publish(building, out, record)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return record


def _write(module: nn.Module, example: torch.Tensor, names: list[str], path: Path) -> None:
    dynamic = {"image": {1: "height", 2: "width"}, **{n: {0: "detections"} for n in names}}
    with exporter_errors("the detector"):
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["image"],
            output_names=names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


@torch.inference_mode()
def _parity(module: nn.Module, engine: DetectionEngine, images: list[torch.Tensor]) -> dict:
    """The largest box and score differences over the detections of ``images`` (see the
    module docstring); ExportError when a detection is missing or moved."""
    worst_box = worst_score = 0.0
    for number, image in enumerate(images, start=1):
        boxes, labels, scores = (t.float() for t in module(image)[:3])
        exported = engine.run(image)
        keep = scores >= PARITY_MIN_SCORE
        count = int(keep.sum())
        if len(exported["scores"]) < count or not torch.equal(
            exported["labels"][:count], labels[keep]
        ):
            raise ExportError(
                f"the onnx export finds other objects than the PyTorch model on parity image "
                f"{number} ({len(exported['scores'])} against {count} scored {PARITY_MIN_SCORE}+)"
                "; nothing was written"
            )
        if count:
            worst_box = max(worst_box, float((exported["boxes"][:count] - boxes[keep]).abs().max()))
            worst_score = max(
                worst_score, float((exported["scores"][:count] - scores[keep]).abs().max())
            )
    if worst_box > BOX_TOLERANCE or worst_score > SCORE_TOLERANCE:
        raise ExportError(
            f"the onnx export's detections differ from the PyTorch model's by up to "
            f"{worst_box:.3g} px and {worst_score:.3g} in score (tolerance {BOX_TOLERANCE} px, "
            f"{SCORE_TOLERANCE}); nothing was written"
        )
    return {
        "max_abs_box_difference": worst_box,
        "max_abs_logit_difference": worst_score,  # scores: the figure `graft export` prints
        "box_tolerance": BOX_TOLERANCE,
        "tolerance": SCORE_TOLERANCE,
        "min_score": PARITY_MIN_SCORE,
    }


class DetectionEngine:
    """An exported detector in ONNX Runtime: each image of a batch in, its detections out (as
    :meth:`graft.tasks.detection.task.DetectionTask.infer` gives them)."""

    def __init__(self, session: Any, masks: bool = False):
        self.session, self.masks = session, masks

    @classmethod
    def open(cls, path: Path, masks: bool = False) -> DetectionEngine:
        from graft.export.engine import ExportedEngine

        return cls(ExportedEngine(path, "onnx", ["image"]).session, masks)

    def run(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.session.run(None, {"image": image.detach().cpu().numpy()})
        names = ["boxes", "labels", "scores"] + (["masks"] if self.masks else [])
        return {name: torch.from_numpy(value) for name, value in zip(names, outputs, strict=True)}

    def __call__(self, images: list[torch.Tensor]) -> list[dict]:
        from graft.tasks.detection.answers import compact

        return [compact(self.run(image)) for image in images]


def detection_engine(folder: Path, run_dir: Path | None, masks: bool) -> DetectionEngine:
    """The engine of the detection export in ``folder`` (checked against the run's weights as
    :func:`graft.export.engine.load_engine` checks them)."""
    from graft.export.engine import load_engine

    record_path = Path(folder).expanduser() / "export.json"
    if record_path.is_file() and json.loads(record_path.read_text()).get("format") != "onnx":
        raise RunError(f"{folder} holds no ONNX export; write one with: graft export RUN")
    engine, _ = load_engine(folder, "onnx", run_dir=run_dir)
    return DetectionEngine(engine.session, masks)
