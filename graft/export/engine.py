"""Running an exported model: ONNX Runtime or TorchScript on collated batches.

``graft export`` (:mod:`graft.export.exporter`) writes a folder with the model file and
``export.json``; :func:`load_engine` opens such a folder and checks that it belongs to the run's
current weights, and :class:`ExportedEngine` answers with it in place of the PyTorch modules
(``graft predict --engine onnx``, ``graft.load(RUN, engine="onnx")``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import torch

from graft.errors import ConfigError, GraftError, RunError

FORMATS = ("onnx", "torchscript")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
#: The largest absolute difference of logits between the exported and the PyTorch model that
#: an export accepts.
PARITY_TOLERANCE = 1e-4
#: How many real inputs the parity check compares, in batches of :data:`PARITY_BATCH`.
PARITY_INPUTS = 32
PARITY_BATCH = 8
OUTPUT_NAME = "logits"
IMAGE_INPUT = "pixels"
#: The input of an audio model: waveforms ``[batch, samples]`` at its preprocessing's sample
#: rate and clip length (the log-mel frontend is inside the exported graph).
AUDIO_INPUT = "waveforms"
#: The inputs that are one tensor of a fixed shape but for the batch.
TENSOR_INPUTS = (IMAGE_INPUT, AUDIO_INPUT)


class ExportError(GraftError, RuntimeError):
    """The exported model does not give the PyTorch model's answers, or cannot be written."""


def batch_tensors(batch) -> tuple[torch.Tensor, ...]:
    return tuple(batch.values()) if isinstance(batch, dict) else (batch,)


def publish(building: Path, out: Path, record: dict) -> None:
    """Write ``record`` as ``export.json`` into the finished folder ``building`` and move it to
    ``out``, replacing an earlier export there: an export appears whole or not at all."""
    (building / "export.json").write_text(json.dumps(record, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    building.rename(out)


def model_hash(run_dir: Path | None) -> str | None:
    """SHA-256 of the run's ``model.safetensors``: ties an export to the weights it came from."""
    if run_dir is None or not (Path(run_dir) / "model.safetensors").is_file():
        return None
    return hashlib.sha256((Path(run_dir) / "model.safetensors").read_bytes()).hexdigest()


class ExportedEngine:
    """Runs an exported model file on collated batches (a pixel tensor, or the tokenizer's
    dict), returning float32 logits as a CPU tensor."""

    def __init__(self, path: Path, format: str, input_names: list[str]):
        self.format, self.input_names = format, input_names
        if format == "onnx":
            try:
                import onnxruntime
            except ImportError:
                raise ConfigError(
                    "ONNX export and --engine onnx need onnxruntime: pip install 'graft[export]'"
                ) from None
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()  # as torch: OMP_NUM_THREADS
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, batch) -> torch.Tensor:
        tensors = batch_tensors(batch)
        if self.format == "onnx":
            feeds = {n: t.cpu().numpy() for n, t in zip(self.input_names, tensors, strict=True)}
            return torch.from_numpy(self.session.run([OUTPUT_NAME], feeds)[0]).float()
        with torch.inference_mode():
            return self.module(*(t.cpu() for t in tensors)).float()


def load_engine(
    folder: str | Path, format: str | None = None, run_dir: str | Path | None = None
) -> tuple[ExportedEngine, dict]:
    """The engine of the export in ``folder`` and its ``export.json`` record; ``format``, when
    given, must be the one the folder holds, and ``run_dir``, when given, must hold the model
    it was exported from (not one trained since)."""
    folder = Path(folder).expanduser()
    record_path = folder / "export.json"
    if not record_path.is_file():
        raise RunError(
            f"{folder}: no exported model (export.json is missing); "
            f"write one with: graft export RUN --format {format or 'onnx'}"
        )
    record = json.loads(record_path.read_text())
    if format is not None and record["format"] != format:
        raise RunError(
            f"{folder} holds a {record['format']} export, not {format}: "
            f"write one with: graft export RUN --format {format} --out OTHER_FOLDER"
        )
    exported_from = record.get("model_sha256")
    if run_dir is not None and exported_from and exported_from != model_hash(Path(run_dir)):
        raise RunError(
            f"{folder} was exported from another model than the one now in {run_dir} (it was "
            f"trained again since): export it again with graft export {run_dir} --overwrite"
        )
    engine = ExportedEngine(folder / record["file"], record["format"], record["inputs"])
    return engine, record
