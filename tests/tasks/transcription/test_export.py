"""ONNX export of speech models: Whisper's encoder and decoder run by graft's greedy loop,
and a CTC model whole, each giving the PyTorch model's transcripts on real clips; predict
answering with the export; what cannot be exported refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.errors import ConfigError
from tests.tasks.transcription.conftest import needs_dataset, subset

pytestmark = needs_dataset()


def saved_run(spec: str, out):
    """The pretrained model ``spec`` saved as a transcription run, as it is (no fit)."""
    from graft.runs.persistence import fill_fitted
    from graft.tasks.transcription.task import TranscriptionTask

    model = graft.GraftEstimator(model=spec, task="transcription", num_workers=0)
    task = TranscriptionTask()
    config = task.defaults(model.config.for_kind(task.kind).resolved(model=spec)).with_defaults()
    backbone = TranscriptionTask.restore_backbone(spec, pretrained=True)
    fill_fitted(model, task, backbone, task.new_head(backbone), config, spec)
    model.save(out)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[str]:
    """Two utterances of speechocean762's test speakers."""
    folder = subset(tmp_path_factory.mktemp("export-clips") / "test", "test", 2, step=60)
    return sorted(str(p) for p in folder.glob("*.flac"))


@pytest.fixture(scope="module")
def short_whisper(tmp_path_factory):
    """A randomly initialised two-layer Whisper with tiny.en's processor whose transcripts
    end (about 12 tokens: the end token's row and the decoder's last bias share a direction;
    a random model's end token, the padding row, scores 0 and never wins), its timestamp
    tokens suppressed (a random model writes them, and ``generate`` then splits the window in
    segments and decodes it again, as no trained model does after ``<|notimestamps|>``)."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    from graft.tasks.transcription.ctranslate2_whisper import TINY_EN, offline_model_path

    offline = offline_model_path()
    settings = dict(TINY_EN, d_model=16, encoder_layers=2, decoder_layers=2)
    settings.update(encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32)
    settings.update(decoder_ffn_dim=32)
    folder = tmp_path_factory.mktemp("short-whisper")
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(WhisperConfig(**settings))
    config = GenerationConfig.from_pretrained(offline)
    stamps = range(config.no_timestamps_token_id + 1, model.config.vocab_size)
    config.suppress_tokens = sorted(set(config.suppress_tokens) | set(stamps))
    model.generation_config = config
    with torch.no_grad():
        direction = torch.nn.functional.normalize(torch.randn(16), dim=0)
        model.model.decoder.embed_tokens.weight[config.eos_token_id] = 0.3 * direction
        model.model.decoder.layer_norm.bias.copy_(0.3 * direction)
    model.save_pretrained(folder)
    WhisperProcessor.from_pretrained(offline).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def whisper_run(short_whisper, tmp_path_factory):
    return saved_run(str(short_whisper), tmp_path_factory.mktemp("runs") / "whisper")


def test_a_whisper_export_transcribes_as_the_pytorch_model(whisper_run, clips):
    check = str(Path(clips[0]).parent)
    exported = CliRunner().invoke(app, ["export", str(whisper_run), "--check", check])
    assert exported.exit_code == 0, exported.output
    folder = whisper_run / "export"
    record = json.loads((folder / "export.json").read_text())
    assert {p.name for p in folder.iterdir()} >= {"encoder.onnx", "decoder.onnx", "processor"}
    parity = record["parity"]
    assert parity["transcripts_equal"] == parity["inputs"] == 2
    assert parity["max_abs_logit_difference"] <= parity["tolerance"]
    torch_model = graft.load(whisper_run, engine="torch")
    onnx_model = graft.load(whisper_run, engine="onnx")
    assert onnx_model.engine_name_ == "onnx"
    expected = torch_model.predict(clips[:1])
    assert onnx_model.predict(clips[:1]) == expected and len(expected[0]) > 10
    # graft predict answers with the export it finds (engine auto), the same transcript
    printed = CliRunner().invoke(app, ["predict", str(whisper_run), clips[0], "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output.strip().splitlines()[-1])["transcript"] == expected[0]


def test_int8_and_torchscript_are_refused_in_one_line(whisper_run, clips):
    out = ["--out", str(whisper_run / "other"), "--check", clips[0]]
    for options, expected in (
        (["--quantize", "int8"], "exported in float only"),
        (["--format", "torchscript"], "exports to ONNX only"),
    ):
        refused = CliRunner().invoke(app, ["export", str(whisper_run), *out, *options])
        assert refused.exit_code != 0
        assert isinstance(refused.exception, ConfigError), refused.output
        assert expected in str(refused.exception) and "\n" not in str(refused.exception)
    assert not (whisper_run / "other").exists()


def test_beam_search_is_refused_for_export(whisper_run, clips):
    from graft.export.exporter import export_model

    model = graft.load(whisper_run, engine="torch")
    model.fitted_task_.beams = 4
    with pytest.raises(ConfigError, match="an ONNX export decodes greedily"):
        export_model(model, clips, whisper_run / "beams")
    assert not (whisper_run / "beams").exists()


def test_a_ctc_export_transcribes_as_the_pytorch_model(tiny_ctc, clips, tmp_path):
    from graft.export.exporter import export_model

    model = graft.load(saved_run(str(tiny_ctc), tmp_path / "ctc"), engine="torch")
    record = export_model(model, clips, tmp_path / "ctc" / "export")
    assert record["model"] == "ctc" and record["parity"]["transcripts_equal"] == 2
    assert record["parity"]["max_abs_logit_difference"] <= record["parity"]["tolerance"]
    assert graft.load(tmp_path / "ctc", engine="onnx").predict(clips) == model.predict(clips)


@pytest.mark.slow
def test_the_offline_tiny_en_exports_with_its_transcripts_on_real_clips(tmp_path):
    """graft's offline Whisper, as it is (no fit), exported and checked on 4 real clips of
    speechocean762's test speakers: the ONNX transcripts are the PyTorch ones, word for word.
    Measured (CPU, one thread, a loaded machine): export and parity about 50 s; the largest
    logit difference about 5e-5."""
    from graft.export.exporter import export_model

    data = subset(tmp_path / "clips", "test", 4, step=35)
    model = graft.load(saved_run("whisper-tiny.en", tmp_path / "tiny"), engine="torch")
    clips = sorted(str(p) for p in data.glob("*.flac"))
    record = export_model(model, clips, tmp_path / "tiny" / "export")
    assert record["parity"]["transcripts_equal"] == 4
    assert record["parity"]["max_abs_logit_difference"] < 1e-3
    onnx_model = graft.load(tmp_path / "tiny", engine="onnx")
    texts = onnx_model.predict(clips)
    assert texts == model.predict(clips) and all(len(t.split()) >= 3 for t in texts)
