"""Audio through an image network: a log-mel spectrogram shown to an ImageNet backbone.

The transfer of PANNs (Kong et al. 2020) and AST (Gong et al. 2021): ImageNet features carry
over to spectrograms, treated as one-channel images of frequency by time. A waveform
``[B, samples]`` becomes a power mel spectrogram (torchaudio's ``MelSpectrogram``), decibels
(``AmplitudeToDB``, ``top_db`` below each clip's peak), standardised (per clip, or by fixed
statistics), resized bilinearly to the image network's input size (height = mel bands, low
frequencies first; width = time), and repeated over the three colour channels. A standardised
spectrogram has zero mean and unit variance, as an ImageNet-normalised image has in each
channel, so it is fed as a normalised image directly.

The spectrogram is computed in float64: the decibels of the quiet bins near ``top_db`` below
the peak amplify float32 rounding in the FFT (up to 0.3 dB between PyTorch's FFT and ONNX
Runtime's on FSDD clips), so an exported frontend would disagree with PyTorch's; in float64
they agree to 1e-7 after the cast back, at no measurable cost beside the image network.

SpecAugment (Park et al. 2019, "SpecAugment: A Simple Data Augmentation Method for Automatic
Speech Recognition") masks two random bands of up to 1/8 of the mel bands and two random spans
of up to 1/8 of the frames with the mean (0 after standardisation), independently per clip, in
training mode only.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torchaudio import transforms

from graft.backbones.audio.preprocessing import AudioPreprocessing, SpectrogramSettings
from graft.backbones.base import Backbone
from graft.errors import ConfigError

#: SpecAugment: masks of each kind, and the largest mask as a fraction of the axis.
SPEC_AUGMENT_MASKS, SPEC_AUGMENT_FRACTION = 2, 1 / 8


class LogMelFrontend(nn.Module):
    """Waveforms ``[B, samples]`` to normalised 3-channel spectrogram images ``[B, 3, H, W]``."""

    def __init__(self, preprocessing: AudioPreprocessing, channels: int = 3):
        super().__init__()
        settings = preprocessing.spectrogram
        if settings is None or settings.image_size is None:
            raise ConfigError("a log-mel frontend needs spectrogram settings with an image size")
        self.settings = settings
        self.channels = channels
        self.mel = transforms.MelSpectrogram(
            sample_rate=preprocessing.sample_rate,
            n_fft=settings.n_fft,
            hop_length=settings.hop_length,
            f_min=settings.f_min,
            f_max=settings.f_max,
            n_mels=settings.n_mels,
            power=2.0,
        ).double()
        self.to_db = transforms.AmplitudeToDB(stype="power", top_db=settings.top_db)
        frames = preprocessing.samples // settings.hop_length + 1
        augment = [
            transforms.FrequencyMasking(_mask_size(settings.n_mels), iid_masks=True)
            for _ in range(SPEC_AUGMENT_MASKS)
        ] + [
            transforms.TimeMasking(_mask_size(frames), iid_masks=True)
            for _ in range(SPEC_AUGMENT_MASKS)
        ]
        self.spec_augment = nn.Sequential(*augment)
        self.augment = True

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Standardised log-mel spectrograms ``[B, 1, n_mels, frames]`` (float32, computed in
        the mel filterbank's dtype, float64)."""
        dtype = self.mel.mel_scale.fb.dtype
        with torch.autocast(waveforms.device.type, enabled=False):
            power = self.mel(waveforms.to(dtype)).unsqueeze(1)  # [B, 1, F, T]: top_db per clip
            decibels = self.to_db(power)
            settings = self.settings
            if settings.normalization == "fixed":
                return ((decibels - settings.mean) / settings.std).float()
            mean = decibels.mean(dim=(-2, -1), keepdim=True)
            std = decibels.std(dim=(-2, -1), keepdim=True).clamp(min=1e-5)
            return ((decibels - mean) / std).float()

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.dim() != 2:
            raise ValueError(f"expected waveforms [batch, samples], got {tuple(waveforms.shape)}")
        spectrogram = self.log_mel(waveforms)
        if self.training and self.augment:
            spectrogram = self.spec_augment(spectrogram)
        image = nn.functional.interpolate(
            spectrogram, size=self.settings.image_size, mode="bilinear", align_corners=False
        )
        return image.expand(-1, self.channels, -1, -1)


def _mask_size(length: int) -> int:
    return max(1, round(length * SPEC_AUGMENT_FRACTION))


class SpectrogramBackbone(Backbone):
    """An image backbone fed log-mel spectrograms; batches are waveforms ``[B, samples]``.

    Its features, feature dimension, parameter groups, LoRA targets and source classifier
    are the image backbone's: the frontend has no trainable parameters.

    Spectrograms are far from the photos the ImageNet weights saw, so when the network
    trains, its BatchNorm layers learn their statistics (:attr:`adapts_batchnorm`), it trains
    at the head's rate (:attr:`lr_mult`) and for up to :attr:`backbone_epochs` epochs (early
    stopping ends it sooner). On FSDD (100 training clips per digit, 64-pixel images,
    fine-tune) that reached 0.93-0.96 test accuracy where graft's image recipe (statistics
    frozen, a tenth of the rate) reached 0.88 in as many epochs; on the 2,700 training clips
    0.997. In 3 or 6 epochs the statistics do not settle (no better than the head, or 0.79),
    nor in 15 epochs of 4 steps (bench/RESULTS.md).

    Args:
        image: any image :class:`Backbone` (``create_backbone("efficientnet_lite0")``).
        preprocessing: the sample rate, clip length and spectrogram settings; an unset
            ``image_size`` becomes the spectrogram's own size (``n_mels`` by its frames, see
            :meth:`SpectrogramSettings.natural_size`), not the image network's input size.
            Assigning another record to :attr:`preprocessing` later rebuilds the frontend.
        spec: the model string that recreates it (``audio:efficientnet_lite0``).
        spec_augment: apply SpecAugment in training mode (switch with :attr:`spec_augment`).
    """

    adapts_batchnorm = True
    lr_mult = 1.0
    backbone_epochs = 15

    def __init__(
        self,
        image: Backbone,
        preprocessing: AudioPreprocessing,
        spec: str,
        spec_augment: bool = True,
    ):
        super().__init__()
        if image.modality != "image":
            raise ConfigError(
                f"{image.spec} reads {image.modality}, not images: audio:SPEC needs an image "
                "backbone"
            )
        self.image = image
        self.spec = spec
        self.feature_dim = image.feature_dim
        self.source_head = image.source_head
        self.preprocessing = preprocessing
        self.spec_augment = spec_augment

    @property
    def preprocessing(self) -> AudioPreprocessing:
        """The sample rate, clip length and spectrogram settings (saved with a run)."""
        return self._preprocessing

    @preprocessing.setter
    def preprocessing(self, record: AudioPreprocessing) -> None:
        """Take ``record`` and build its frontend (the mel filterbank and SpecAugment's mask
        sizes depend on it), on the image network's device, in this module's mode."""
        if not isinstance(record, AudioPreprocessing):
            raise ConfigError(f"{self.spec}: expected audio preprocessing, got {record!r}")
        settings = record.spectrogram or SpectrogramSettings()
        if settings.image_size is None:
            settings = dataclasses.replace(
                settings, image_size=settings.natural_size(record.samples)
            )
        self._preprocessing = dataclasses.replace(
            record, spectrogram=settings, feature_extractor=None
        )
        augment = self.frontend.augment if "frontend" in self._modules else True
        channels = len(self.image.preprocessing.mean)
        frontend = LogMelFrontend(self._preprocessing, channels=channels)
        device = next(self.image.parameters()).device
        self.frontend = frontend.to(device).train(self.training)
        self.frontend.augment = augment

    @property
    def spec_augment(self) -> bool:
        """Whether SpecAugment masks the spectrograms in training mode."""
        return self.frontend.augment

    @spec_augment.setter
    def spec_augment(self, value: bool) -> None:
        self.frontend.augment = bool(value)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.image(self.frontend(batch))

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        return self.image.parameter_groups()

    def lora_targets(self) -> list[str]:
        return self.image.lora_targets()
