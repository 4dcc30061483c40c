"""Audio backbones on real FSDD clips: the log-mel spectrogram transfer onto the offline
efficientnet_lite0, and transformers audio encoders (tiny random wav2vec 2.0, AST and Whisper
built from configs, no download) behind the same Backbone protocol."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from graft.backbones import list_backbones
from graft.backbones.audio import (
    AudioPreprocessing,
    HFAudioBackbone,
    SpectrogramBackbone,
    create_audio_backbone,
)
from graft.backbones.lora import LoraSettings, inject_lora
from graft.data.audio import AudioDataset, collate_audio, decode_audio, fit_length
from graft.errors import ConfigError, ModelUnavailableError
from tests.conftest import SHARED

FSDD = SHARED / "fsdd"
CLIPS = ("0_george_5", "3_jackson_7", "7_theo_12", "9_yweweler_30")


@pytest.fixture(scope="module")
def fsdd():
    if not (FSDD / "0").is_dir():
        pytest.skip(f"shared dataset {FSDD} is not available")
    return FSDD


def waveforms(fsdd, preprocessing: AudioPreprocessing, names=CLIPS) -> torch.Tensor:
    files = [fsdd / n[0] / f"{n}.wav" for n in names]
    return torch.stack(
        [
            fit_length(decode_audio(f, preprocessing.sample_rate), preprocessing.samples, False)
            for f in files
        ]
    )


@pytest.fixture(scope="module")
def spectrogram():
    entry = next(e for e in list_backbones() if e.name == "efficientnet_lite0")
    if not entry.is_available():
        pytest.skip("efficientnet_lite0's weights package is not installed")
    return create_audio_backbone("audio:efficientnet_lite0", clip_seconds=0.7)


@pytest.fixture(scope="module")
def small(spectrogram):
    """The same network shown 112x112 spectrograms: a quarter of the compute, for CPU tests."""
    smaller = spectrogram.preprocessing.replace(image_size=(112, 112))
    return SpectrogramBackbone(spectrogram.image, smaller, spectrogram.spec).eval()


def test_spectrogram_features_on_real_clips(spectrogram, small, fsdd):
    assert isinstance(spectrogram, SpectrogramBackbone) and not spectrogram.training
    assert spectrogram.modality == "audio" and spectrogram.spec == "audio:efficientnet_lite0"
    settings = spectrogram.preprocessing.spectrogram
    assert settings.image_size == (64, 71)  # 64 bands by the 0.7 s clip's frames
    assert spectrogram.preprocessing.samples == 11200
    backbone = small
    batch = waveforms(fsdd, backbone.preprocessing)
    with torch.no_grad():
        features = backbone(batch)
        again = backbone(batch)
        alone = backbone(batch[2:3])
    assert features.shape == (4, 1280) == (4, backbone.feature_dim)
    assert torch.isfinite(features).all()
    assert torch.equal(features, again)
    torch.testing.assert_close(alone[0], features[2], atol=1e-4, rtol=1e-4)
    assert torch.cdist(features, features)[0, 1:].min() > 1.0  # different digits differ


def test_the_frontend_makes_normalised_images(spectrogram, fsdd):
    frontend = spectrogram.frontend
    batch = waveforms(fsdd, spectrogram.preprocessing)
    with torch.no_grad():
        log_mel = frontend.log_mel(batch)
        image = frontend(batch)
        quieter = frontend(batch * 0.1)
    assert log_mel.shape == (4, 1, 64, 11200 // 160 + 1)
    torch.testing.assert_close(log_mel.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(log_mel.std(dim=(1, 2, 3)), torch.ones(4), atol=1e-4, rtol=0)
    assert image.shape == (4, 3, 64, 71)
    assert torch.equal(image[:, 0], image[:, 2])  # the same spectrogram in every channel
    # top_db and the standardisation are per clip: a clip 20 dB quieter looks the same
    torch.testing.assert_close(quieter, image, atol=1e-2, rtol=0)
    assert list(frontend.parameters()) == []


def test_spec_augment_masks_only_in_training(small, fsdd):
    backbone = small
    batch = waveforms(fsdd, backbone.preprocessing)
    with torch.no_grad():
        clean = backbone.frontend(batch)
        try:
            backbone.train()
            torch.manual_seed(0)
            first, second = backbone.frontend(batch), backbone.frontend(batch)
            backbone.spec_augment = False
            switched_off = backbone.frontend(batch)
        finally:
            backbone.spec_augment = True
            backbone.eval()
        assert torch.equal(backbone.frontend(batch), clean)
    assert not torch.equal(first, clean) and not torch.equal(first, second)
    assert torch.equal(switched_off, clean)
    changed = (first != clean).float().mean().item()
    assert 0.01 < changed < 0.6  # bands and spans masked, not the whole image


def test_spectrogram_groups_fingerprint_and_options(spectrogram, small, fsdd):
    backbone = spectrogram
    groups = backbone.parameter_groups()
    assert len(groups) > 1 and all(groups)
    assert [len(g) for g in groups] == [len(g) for g in backbone.image.parameter_groups()]
    assert sum(len(g) for g in groups) == len(list(backbone.parameters()))
    assert backbone.lora_targets() == ["conv_pw", "conv_pwl"]
    assert backbone.source_head is not None and backbone.source_head[0].shape == (1000, 1280)
    other = SpectrogramBackbone(
        backbone.image,
        backbone.preprocessing.replace(n_mels=32, image_size=(96, 128)),
        "audio:efficientnet_lite0",
    ).eval()
    assert backbone.fingerprint() == backbone.fingerprint()
    assert len({backbone.fingerprint(), small.fingerprint(), other.fingerprint()}) == 3
    batch = waveforms(fsdd, backbone.preprocessing, CLIPS[:2])
    with torch.no_grad():
        assert other.frontend(batch).shape == (2, 3, 96, 128)
        assert other(batch).shape == (2, 1280)
    fixed = backbone.preprocessing.replace(normalization="fixed", mean=-46.0, std=24.0)
    with torch.no_grad():
        decibels = SpectrogramBackbone(backbone.image, fixed, "x").frontend.log_mel(batch)
    assert -1.5 < decibels.mean().item() < 1.5 and decibels.std().item() > 0.5


def test_create_audio_backbone_refuses_what_it_cannot_build(spectrogram, tmp_path):
    with pytest.raises(ModelUnavailableError, match="unknown audio model"):
        create_audio_backbone("efficientnet_lite0")
    with pytest.raises(ModelUnavailableError, match="name an image backbone"):
        create_audio_backbone("audio:")
    with pytest.raises(ConfigError, match="unknown audio preprocessing option"):
        create_audio_backbone("audio:efficientnet_lite0", nmels=64)
    with pytest.raises(ConfigError, match="sample_rate cannot be set"):
        create_audio_backbone(str(tmp_path), sample_rate=8000)
    (tmp_path / "config.json").write_text('{"model_type": "wav2vec2"}')
    with pytest.raises(ModelUnavailableError, match="preprocessor_config.json"):
        create_audio_backbone(str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="Hugging Face audio model org/absent"):
        create_audio_backbone("hf:org/absent")  # the tests run with HF_HUB_OFFLINE
    with pytest.raises(ConfigError, match="reads audio, not images"):
        SpectrogramBackbone(spectrogram, spectrogram.preprocessing, "audio:audio")
    text_like = dataclasses.replace(spectrogram.preprocessing, spectrogram=None)
    with pytest.raises(ConfigError, match="no spectrogram settings"):
        create_audio_backbone("audio:efficientnet_lite0", preprocessing=text_like)


def test_lora_adapts_the_image_network(small, fsdd):
    backbone = copy.deepcopy(small)
    before = backbone.fingerprint()
    inject_lora(backbone, LoraSettings(rank=2, alpha=4.0, targets=tuple(backbone.lora_targets())))
    assert backbone.adapter_parameters()
    assert backbone.fingerprint() == before  # B = 0: the adapted network computes the same
    with torch.no_grad():
        assert backbone(waveforms(fsdd, backbone.preprocessing, CLIPS[:1])).shape == (1, 1280)


# Transformers audio models, tiny and random ----------------------------------------------------


def _save(model, extractor, folder):
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Randomly initialised wav2vec 2.0, AST and Whisper (2 layers, width 32) in folders."""
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    root = tmp_path_factory.mktemp("tiny-audio")
    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    wav2vec2 = Wav2Vec2Config(
        **small,
        conv_dim=(32, 32),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    ast = ASTConfig(**small, num_mel_bins=16, max_length=100)
    whisper = WhisperConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        num_mel_bins=16,
        max_source_positions=50,  # 100 mel frames: a 1-second window
        max_target_positions=16,
        vocab_size=100,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    return {
        "wav2vec2": _save(Wav2Vec2Model(wav2vec2), Wav2Vec2FeatureExtractor(), root / "w2v"),
        "ast": _save(
            ASTModel(ast), ASTFeatureExtractor(num_mel_bins=16, max_length=100), root / "ast"
        ),
        "whisper": _save(
            WhisperModel(whisper),
            WhisperFeatureExtractor(feature_size=16, chunk_length=1),
            root / "whisper",
        ),
    }


@pytest.mark.parametrize(
    ("kind", "targets"),
    [
        ("wav2vec2", ["q_proj", "k_proj", "v_proj", "out_proj"]),
        ("ast", ["q_proj", "k_proj", "v_proj"]),
        ("whisper", ["q_proj", "k_proj", "v_proj", "out_proj"]),
    ],
)
def test_transformers_audio_models_on_real_clips(tiny_models, fsdd, kind, targets):
    backbone = create_audio_backbone(str(tiny_models[kind]), clip_seconds=0.7)
    assert isinstance(backbone, HFAudioBackbone) and not backbone.training
    assert backbone.preprocessing == AudioPreprocessing(
        sample_rate=16000, clip_seconds=0.7, feature_extractor=str(tiny_models[kind])
    )
    assert backbone.spec == str(tiny_models[kind]) and backbone.modality == "audio"
    batch = waveforms(fsdd, backbone.preprocessing)
    with torch.no_grad():
        features = backbone(batch)
        outputs = backbone.model(
            **{k: v for k, v in backbone.model_inputs(batch).items() if k != "attention_mask"}
        )
    assert features.shape == (4, 32) == (4, backbone.feature_dim)
    assert torch.isfinite(features).all() and features.std(dim=0).min() > 0
    if kind == "ast":  # AST's pooled output: the mean of its CLS and distillation tokens
        expected = outputs.pooler_output
    elif kind == "whisper":  # the 0.7 s clip fills 35 of the 50 frames of the 1 s window
        expected = outputs.last_hidden_state[:, :35].mean(dim=1)
    else:
        expected = outputs.last_hidden_state.mean(dim=1)
    torch.testing.assert_close(features, expected)
    groups = backbone.parameter_groups()
    assert len(groups) == 3 and all(groups)  # before the layers, then one per layer
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    assert sum(len(g) for g in groups) == len(trainable)
    assert backbone.lora_targets() == targets
    assert len(backbone.fingerprint()) == 64


def test_whisper_keeps_its_encoder_and_fixed_positions(tiny_models):
    backbone = create_audio_backbone(str(tiny_models["whisper"]), clip_seconds=5.0)
    assert type(backbone.model).__name__ == "WhisperEncoder"
    assert backbone.preprocessing.clip_seconds == 1.0  # capped at its 1-second window
    for copy_of in (backbone, copy.deepcopy(backbone)):
        grouped = {id(p) for g in copy_of.parameter_groups() for p in g}
        assert id(copy_of.model.embed_positions.weight) not in grouped
        assert len(grouped) == sum(1 for p in copy_of.parameters() if p.requires_grad)


def test_transformers_audio_backbone_trains_with_lora(tiny_models, fsdd):
    backbone = create_audio_backbone(str(tiny_models["wav2vec2"]), clip_seconds=0.5)
    restored = create_audio_backbone(
        str(tiny_models["wav2vec2"]), pretrained=False, preprocessing=backbone.preprocessing
    )
    assert restored.preprocessing == backbone.preprocessing
    inject_lora(backbone, LoraSettings(rank=2, alpha=4.0, targets=tuple(backbone.lora_targets())))
    for param in backbone.parameters():
        param.requires_grad = False
    adapters = backbone.adapter_parameters()
    for param in adapters:
        param.requires_grad = True
    backbone.train()
    features = backbone(waveforms(fsdd, backbone.preprocessing, CLIPS[:2]))
    features.pow(2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in adapters)


def test_a_dataset_batch_feeds_a_backbone(tiny_models, fsdd):
    backbone = create_audio_backbone(str(tiny_models["ast"]))
    files = [str(fsdd / n[0] / f"{n}.wav") for n in CLIPS]
    dataset = AudioDataset(files, np.array([0, 3, 7, 9]), backbone.preprocessing)
    batch, labels = collate_audio([dataset[i] for i in range(4)])
    assert batch.shape == (4, 16000) and labels.tolist() == [0, 3, 7, 9]
    with torch.no_grad():
        assert backbone(batch).shape == (4, 32)


# Sanity of the frontend: frozen ImageNet features separate spoken digits ----------------------


def _official_subset(fsdd, per_digit: int, test: bool) -> list[tuple[str, int]]:
    """The first ``per_digit`` files of each digit from the official split, ordered by
    recording index then speaker (so every speaker is represented)."""
    chosen = []
    for digit in range(10):
        files = [f for f in (fsdd / str(digit)).glob("*.wav")]
        files = [f for f in files if (int(f.stem.split("_")[2]) < 5) == test]
        files.sort(key=lambda f: (int(f.stem.split("_")[2]), f.stem.split("_")[1]))
        chosen += [(str(f), digit) for f in files[:per_digit]]
    return chosen


@pytest.mark.slow
def test_frozen_spectrogram_features_classify_spoken_digits(spectrogram, fsdd):
    """efficientnet_lite0 on log-mel spectrograms, frozen, plus a logistic regression:
    20 training clips per digit, 10 test clips per digit, all six speakers in both. Measured
    0.66 (chance 0.10); the floor leaves four standard errors of 100 test clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(pairs):
        paths, labels = zip(*pairs, strict=True)
        dataset = AudioDataset(list(paths), np.asarray(labels), spectrogram.preprocessing)
        loader = torch.utils.data.DataLoader(dataset, batch_size=50, collate_fn=collate_audio)
        with torch.inference_mode():
            return torch.cat([spectrogram(x) for x, _ in loader]).numpy(), np.asarray(labels)

    train_x, train_y = features(_official_subset(fsdd, 20, test=False))
    test_x, test_y = features(_official_subset(fsdd, 10, test=True))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    accuracy = classifier.fit(train_x, train_y).score(test_x, test_y)
    assert accuracy > 0.45, accuracy


# Model strings, the registry and the preprocessing a fit sets --------------------------------


def test_the_registry_builds_audio_model_strings(spectrogram, tiny_models, tmp_path):
    from graft.backbones import create_backbone
    from graft.backbones.registry import count_parameters

    built = create_backbone("audio:efficientnet_lite0")
    assert isinstance(built, SpectrogramBackbone) and built.spec == "audio:efficientnet_lite0"
    assert built.image.fingerprint() == spectrogram.image.fingerprint()  # the same weights
    assert built.preprocessing.clip_seconds == 1.0  # until a fit sets it from its data
    scratch = create_backbone("audio:scratch:efficientnet_lite0")
    assert scratch.spec == "scratch:audio:efficientnet_lite0" and scratch.source_head is None
    again = create_backbone("scratch:audio:efficientnet_lite0")
    assert again.spec == scratch.spec and again.fingerprint() == scratch.fingerprint()
    wav2vec2 = create_backbone(str(tiny_models["wav2vec2"]), pretrained=False)
    assert isinstance(wav2vec2, HFAudioBackbone)
    (tmp_path / "preprocessor_config.json").write_text('{"image_processor_type": "X"}')
    from graft.backbones.audio import is_audio_model

    assert is_audio_model(str(tiny_models["ast"])) and not is_audio_model(str(tmp_path))
    assert not is_audio_model("efficientnet_lite0") and not is_audio_model("hf:org/absent")
    entry = next(e for e in list_backbones() if e.name == "audio:efficientnet_lite0")
    assert entry.modality == "audio" and entry.is_available()
    assert count_parameters(entry) == entry.parameters


def test_assigning_preprocessing_rebuilds_the_frontend(small, fsdd, tiny_models):
    backbone = copy.deepcopy(small)
    backbone.spec_augment = False
    longer = backbone.preprocessing.replace(clip_seconds=1.5, image_size=(64, 96))
    backbone.preprocessing = longer
    assert backbone.preprocessing == longer and not backbone.spec_augment
    masks = [m.mask_param for m in backbone.frontend.spec_augment]
    assert masks == [8, 8, 19, 19]  # 1/8 of 64 mel bands, of 1.5 s / 10 ms + 1 = 151 frames
    batch = waveforms(fsdd, backbone.preprocessing, CLIPS[:2])
    with torch.no_grad():
        assert backbone.frontend(batch).shape == (2, 3, 64, 96)
    restored = create_audio_backbone(
        "audio:efficientnet_lite0", pretrained=False, preprocessing=longer
    )
    assert restored.preprocessing == longer
    assert restored.frontend.mel.mel_scale.fb.dtype == torch.float64  # see the module docstring
    with pytest.raises(ConfigError, match="audio preprocessing"):
        backbone.preprocessing = dataclasses.replace(longer, spectrogram=None).to_dict()
    hf = create_audio_backbone(str(tiny_models["whisper"]))
    hf.preprocessing = dataclasses.replace(hf.preprocessing, clip_seconds=3.0)
    assert hf.preprocessing.clip_seconds == 1.0  # Whisper's (tiny) window
    with pytest.raises(ConfigError, match="16000 Hz"):
        hf.preprocessing = dataclasses.replace(hf.preprocessing, sample_rate=8000)
    assert hf.export_refusal and small.export_refusal is None


def test_a_fit_sets_clip_length_image_size_and_spec_augment(fsdd):
    from graft.backbones.factory import build_backbone
    from graft.config import FitConfig
    from graft.data import LabelledData
    from graft.data.audio import audio_duration, default_clip_seconds

    files = [str(f) for f in sorted((fsdd / "7").glob("*.wav"))[:40]]
    data = LabelledData(files, np.zeros(40, dtype=np.int64), ["7", "x"], "audio", "fsdd/7")
    config = FitConfig(model="audio:efficientnet_lite0", image_size=48, augment="none")
    backbone = build_backbone(config.validate(), data)
    expected = default_clip_seconds([audio_duration(p) for p in data.items])
    assert backbone.preprocessing.clip_seconds == expected
    assert backbone.preprocessing.spectrogram.image_size == (48, 48)
    assert not backbone.spec_augment
    given = build_backbone(FitConfig(model="audio:efficientnet_lite0", clip_seconds=0.25), data)
    assert given.preprocessing.clip_seconds == 0.25 and given.spec_augment
    # without --image-size: the spectrogram's own size, for the clip length the fit chose
    assert given.preprocessing.spectrogram.image_size == (64, 32)  # 26 frames, widened to 32
    longer = build_backbone(FitConfig(model="audio:efficientnet_lite0", clip_seconds=2.0), data)
    assert longer.preprocessing.spectrogram.image_size == (64, 2 * 16_000 // 160 + 1)
    with pytest.raises(ConfigError, match="audio:efficientnet_lite0 shows it"):
        build_backbone(FitConfig(model="efficientnet_lite0"), data)
    with pytest.raises(ConfigError, match="--views"):
        build_backbone(FitConfig(model="audio:efficientnet_lite0", views=2), data)
    with pytest.raises(ConfigError, match="--clip-seconds must be positive"):
        FitConfig(clip_seconds=0).validate()


def test_spectrograms_train_the_network_with_its_batchnorm_statistics(small):
    """An ImageNet network shown spectrograms learns its BatchNorm statistics whenever its
    weights train (not under LoRA's adapters alone), at the head's rate, for up to 15 epochs;
    the same network on images keeps its statistics, a tenth of the rate and 3 epochs."""
    from torch import nn

    from graft.config import FitConfig
    from graft.strategies.base import backbone_epochs, backbone_lr, backbone_phase, head_phase
    from graft.training.runner import ModuleFactory

    config = FitConfig(lr=1e-3)
    assert backbone_lr(config, small) == pytest.approx(1e-3)
    assert backbone_lr(FitConfig(lr=1e-3, backbone_lr_mult=0.1), small) == pytest.approx(1e-4)
    assert backbone_lr(config, small.image) == pytest.approx(1e-4)
    assert backbone_epochs(config, small) == 15 and backbone_epochs(config, small.image) == 3
    assert backbone_epochs(FitConfig(epochs=4), small) == 4
    tune = backbone_phase(config, small, "finetune", 3)
    assert tune.head_lr == tune.backbone_lr == pytest.approx(1e-3)  # the head never above lr
    assert backbone_phase(config, small.image, "finetune", 3).head_lr == pytest.approx(1e-3)
    adapters = dataclasses.replace(tune, adapters_only=True)
    audio = ModuleFactory(None, nn.Linear(1280, 2), small)
    assert audio.prepared(tune).batchnorm_statistics
    assert not audio.prepared(head_phase(config, 3)).batchnorm_statistics
    assert not audio.prepared(adapters).batchnorm_statistics
    image = ModuleFactory(None, nn.Linear(1280, 2), small.image)
    assert not image.prepared(tune).batchnorm_statistics
