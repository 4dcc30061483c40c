"""When each word of a transcript is spoken: ``graft predict --json``'s word timestamps.

- **Whisper**: after decoding, the transcript is read once more by the decoder (teacher
  forced, behind ``<|startoftranscript|>`` and ``<|notimestamps|>``) and the cross-attention of
  the heads that follow the audio (``alignment_heads`` of the model's generation
  configuration) is aligned to the clip's frames by dynamic time warping, as OpenAI's
  ``whisper/timing.py`` (``find_alignment``) does, with transformers' own median filter and
  DTW. (transformers' ``generate(return_token_timestamps=True)`` drops the
  ``<|notimestamps|>`` row from the alignment, so that its first word always ends at 0.0 s
  without timestamp tokens; and it would decode the transcript again.) A token starts at its
  row's first frame and ends where the next row starts; a word (tokens up to the next one that
  begins with a space, punctuation included) from its first token's start to its last's end.
- **CTC**: the frames of the best path, as the tokenizer's word offsets
  (``output_word_offsets=True``) give them, times the seconds of one output frame (the
  product of the convolutions' strides over 16 kHz: 20 ms for wav2vec2).

Each word is ``{"word", "start", "end"}``, in seconds from the clip's start (0.01 s steps).
A model that gives no timestamps (a Whisper without alignment heads, or with heads that are
not its own, as a configuration copied from another size; a CTC tokenizer without word
offsets) gives None, never invented times.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

#: Seconds of one Whisper encoder frame (two mel frames of 10 ms).
WHISPER_FRAME = 0.02
#: The sample rate of the waveforms the models read.
SAMPLE_RATE = 16_000


def alignment_heads(whole: Any) -> list[tuple[int, int]] | None:
    """The ``(layer, head)`` cross-attention heads of Whisper ``whole`` that follow the
    audio, or None when its generation configuration names none that it has."""
    heads = getattr(whole.generation_config, "alignment_heads", None)
    config = whole.config
    if not heads:
        return None
    pairs = [(int(layer), int(head)) for layer, head in heads]
    fits = all(
        0 <= layer < config.decoder_layers and 0 <= head < config.decoder_attention_heads
        for layer, head in pairs
    )
    return pairs if fits else None


@contextlib.contextmanager
def eager_attention(whole: Any):
    """``whole`` computing attention weights it can return (transformers' eager attention),
    as it was afterwards."""
    before = whole.config._attn_implementation
    whole.config._attn_implementation = "eager"
    try:
        yield
    finally:
        whole.config._attn_implementation = before


def whisper_words(
    whole: Any, tokenizer: Any, encoded: torch.Tensor, rows: list[list[int]], frames: list[int]
) -> list[list[dict]]:
    """Each clip's words with their times (see the module docstring): ``encoded`` the
    encoder's states ``[clips, 1500, width]``, ``rows`` each clip's generated token ids,
    ``frames`` each clip's mel frames (10 ms each) before the padding."""
    heads = alignment_heads(whole)
    prefix = list(tokenizer.prefix_tokens)
    untimed = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    if prefix[-1] != untimed:
        prefix.append(untimed)
    end = tokenizer.eos_token_id
    texts = [[int(t) for t in row if int(t) < end] for row in rows]
    longest = max((len(text) for text in texts), default=0)
    if not longest or heads is None:
        return [[] for _ in rows]
    tokens = torch.full((len(rows), len(prefix) + longest + 1), end, dtype=torch.long)
    for index, text in enumerate(texts):
        tokens[index, : len(prefix) + len(text)] = torch.tensor(prefix + text)
    with eager_attention(whole):
        attention = whole.model.decoder(
            input_ids=tokens.to(encoded.device),
            encoder_hidden_states=encoded,
            output_attentions=True,
        ).cross_attentions
    weights = torch.stack([attention[layer][:, head] for layer, head in heads], dim=1).float()
    found = []
    for index, text in enumerate(texts):
        first = len(prefix) - 1  # the <|notimestamps|> row: the first text token's
        rows_of = weights[index, :, first : first + len(text) + 1, : max(1, frames[index] // 2)]
        times = _token_times(whole, rows_of.cpu())
        found.append(_words(tokenizer, text, times) if text else [])
    return found


def _token_times(whole: Any, weights: torch.Tensor) -> np.ndarray:
    """The start of each row of ``weights`` ``[heads, rows, frames]`` in seconds: the rows
    standardised over tokens, median-filtered over time, averaged over heads, aligned by
    DTW."""
    from transformers.models.whisper.generation_whisper import (
        _dynamic_time_warping,
        _median_filter,
    )

    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = (weights - mean) / std.clamp(min=1e-8)
    width = int(getattr(whole.config, "median_filter_width", 7))
    matrix = _median_filter(weights[None], width)[0].mean(dim=0)
    text_indices, time_indices = _dynamic_time_warping(-matrix.double().numpy())
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    return time_indices[jumps] * WHISPER_FRAME


def _words(tokenizer: Any, tokens: list[int], times: np.ndarray) -> list[dict]:
    """``tokens`` grouped into words, a word starting at a token that begins with a space;
    token ``k`` lasts from ``times[k]`` to ``times[k + 1]``."""
    groups: list[list[int]] = []
    for index, token in enumerate(tokens):
        piece = tokenizer.decode([token])
        if not groups or piece.startswith(" "):
            groups.append([])
        groups[-1].append(index)
    words = []
    for group in groups:
        word = tokenizer.decode([tokens[i] for i in group]).strip()
        if word:
            start, end = float(times[group[0]]), float(times[group[-1] + 1])
            words.append({"word": word, "start": round(start, 2), "end": round(end, 2)})
    return words


def ctc_words(whole: Any, tokenizer: Any, rows: list[list[int]]) -> list[list[dict]] | None:
    """Each clip's words with their times from its best path ``rows`` (the argmax token id of
    each output frame), or None when the tokenizer gives no word offsets or the model's frame
    stride is unknown."""
    stride = getattr(whole.config, "inputs_to_logits_ratio", None)
    if not stride:
        return None
    seconds = float(stride) / SAMPLE_RATE
    found = []
    for row in rows:
        try:
            decoded = tokenizer.decode(row, output_word_offsets=True)
        except TypeError:  # a tokenizer without word offsets
            return None
        offsets = decoded.get("word_offsets") if hasattr(decoded, "get") else None
        if offsets is None:
            return None
        found.append(
            [
                {
                    "word": item["word"],
                    "start": round(item["start_offset"] * seconds, 2),
                    "end": round(item["end_offset"] * seconds, 2),
                }
                for item in offsets
            ]
        )
    return found
