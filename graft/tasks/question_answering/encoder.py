"""The encoder a span head reads: a transformers encoder's last hidden state at every sub-token,
and the encoder and span head of an earlier question-answering run (sequential transfer).

``graft fit DOMAIN.json --model SQUAD_RUN`` starts from a ``graft fit`` run of this kind: its
fine-tuned encoder (recorded under the run's own backbone name, so that the new run restores
without the old one) and its trained span head, which :meth:`QuestionAnsweringTask.new_head`
takes instead of a random one.
"""

from __future__ import annotations

import json
from pathlib import Path

from graft.backbones.hf_tokens import HFTokenBackbone, create_token_backbone
from graft.errors import ModelUnavailableError

#: The kind a run must be of to be continued.
KIND = "question-answering"


class SpanEncoder(HFTokenBackbone):
    """A transformers encoder whose features are its last hidden states, one per sub-token
    (``float[windows, length, feature_dim]``, :class:`~graft.backbones.hf_tokens.HFTokenBackbone`).
    ``head_state``: the span head of the run it was restored from, when it was (None
    otherwise)."""

    head_state: dict | None = None


def create_span_encoder(spec: str, pretrained: bool = True) -> SpanEncoder:
    """The sub-token encoder of a text model string (``minilm``, ``hf:ORG/NAME``, a folder, a
    ``graft pretrain`` run); ConfigError for an image or audio backbone."""
    return create_token_backbone(spec, pretrained, "question answering", SpanEncoder)


def run_record(spec: str | None) -> dict | None:
    """The ``config.json`` of the ``graft fit`` run ``spec`` names, or None when it names none."""
    if not spec:
        return None
    folder = Path(spec).expanduser()
    config = folder / "config.json"
    if not folder.is_dir() or not config.is_file() or not (folder / "labels.json").is_file():
        return None
    try:
        record = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and "format_version" in record else None


def from_run(folder: str, record: dict) -> SpanEncoder:
    """The encoder of the question-answering run in ``folder``, its span head's weights in
    ``head_state``."""
    from safetensors.torch import load_file

    kind = (record.get("task") or {}).get("kind")
    if kind != KIND:
        raise ModelUnavailableError(
            f"{folder} is a {kind} run; --model takes a question-answering run to continue, "
            "a model folder or a `graft pretrain` run"
        )
    if record.get("adapter") is not None:
        raise ModelUnavailableError(
            f"{folder} holds LoRA adapters; continue from a fine-tuned question-answering run"
        )
    weights = load_file(str(Path(folder) / "model.safetensors"))
    encoded = {k[len("backbone.") :]: v for k, v in weights.items() if k.startswith("backbone.")}
    encoder = create_span_encoder(record["backbone"], pretrained=not encoded)
    if encoded:
        encoder.load_state_dict(encoded, strict=True)
    saved = json.loads((Path(folder) / "preprocessing.json").read_text())
    encoder.preprocessing = type(encoder.preprocessing)(
        tokenizer=encoder.preprocessing.tokenizer, max_length=int(saved["max_length"])
    )
    encoder.head_state = {k[len("head.") :]: v for k, v in weights.items() if k.startswith("head.")}
    return encoder
