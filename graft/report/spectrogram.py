"""Spectrogram thumbnails of audio clips, for the report's most confidently wrong examples.

A clip is shown as what a spectrogram backbone hears: its log-mel spectrogram (64 bands,
25 ms windows every 10 ms, at 16 kHz, the top 80 dB), low frequencies at the bottom, time from
left to right, one pixel column per frame up to :data:`MAX_WIDTH` pixels, coloured with
viridis, under its length in seconds. Drawn from the file when the report is built (nothing is
stored with the run); a file that is gone or no longer decodes is named as such.
"""

from __future__ import annotations

import base64
import io

#: The rate clips are drawn at, the mel bands (the thumbnail's height in pixels before
#: scaling) and the widest thumbnail (a longer clip is squeezed to it).
SAMPLE_RATE, MEL_BANDS, MAX_WIDTH = 16_000, 64, 224
#: The thumbnail's height in pixels (each mel band drawn over two rows).
HEIGHT = 2 * MEL_BANDS


def log_mel(path: str):
    """The log-mel spectrogram of the audio file ``path`` in dB (``[bands, frames]``, float32
    NumPy), and the clip's length in seconds.

    Raises:
        graft.data.audio.UnreadableAudio: the file is gone or does not decode.
    """
    import torch
    from torchaudio import transforms

    from graft.data.audio import decode_audio

    waveform = decode_audio(path, SAMPLE_RATE)
    mel = transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=MEL_BANDS, power=2.0
    )
    with torch.inference_mode():
        decibels = transforms.AmplitudeToDB(stype="power", top_db=80.0)(mel(waveform))
    return decibels.numpy(), waveform.shape[-1] / SAMPLE_RATE


def spectrogram_thumbnail(path: str) -> str:
    """An ``<img>`` of the clip at ``path``'s log-mel spectrogram as a PNG data URI, with its
    length, or a note when the file cannot be read any more."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    from graft.data.audio import UnreadableAudio

    try:
        decibels, seconds = log_mel(path)
    except UnreadableAudio:
        return "<div class='muted'>(audio no longer readable)</div>"
    low, high = float(decibels.min()), float(decibels.max())
    scaled = (decibels - low) / max(high - low, 1e-6)
    pixels = (colormaps["viridis"](scaled[::-1])[..., :3] * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    image = image.resize((min(MAX_WIDTH, max(1, image.width)), HEIGHT), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<img alt="log-mel spectrogram" title="log-mel spectrogram, {seconds:.2f} s" '
        f'src="data:image/png;base64,{encoded}"><div class="muted">{seconds:.2f} s</div>'
    )
