"""Fixtures of the transcription tests: small subsets of speechocean762_adults, and tiny
random Whisper and CTC models (built from a configuration, saved with their processors)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

DATASET = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "speechocean762_adults"
if not DATASET.is_dir():
    DATASET = Path("/work/shared/datasets/speechocean762_adults")


def needs_dataset():
    return pytest.mark.skipif(not DATASET.is_dir(), reason="speechocean762_adults is not here")


def rows(split: str) -> list[dict]:
    with open(DATASET / split / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def subset(folder: Path, split: str, count: int, step: int = 1, speakers: bool = True) -> Path:
    """``count`` utterances of ``split`` (every ``step``-th) as an audiofolder in
    ``folder``, with a speaker column (the utterance id's first 5 digits) when asked."""
    folder.mkdir(parents=True, exist_ok=True)
    chosen = rows(split)[::step][:count]
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text"] + (["speaker"] if speakers else []))
        for row in chosen:
            shutil.copy(DATASET / split / row["file_name"], folder / row["file_name"])
            extra = [row["file_name"][:5]] if speakers else []
            writer.writerow([row["file_name"], row["text"], *extra])
    return folder


@pytest.fixture(scope="session")
def small_speech(tmp_path_factory) -> Path:
    """An audiofolder with train/ (16 utterances, 8 speakers) and test/ (6)."""
    if not DATASET.is_dir():
        pytest.skip("speechocean762_adults is not here")
    root = tmp_path_factory.mktemp("speech")
    subset(root / "train", "train", 16, step=10)
    subset(root / "test", "test", 6, step=20)
    return root


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    """A randomly initialised two-layer Whisper with tiny.en's processor and vocabulary."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    from graft.tasks.transcription.ctranslate2_whisper import TINY_EN, offline_model_path

    offline = offline_model_path()
    settings = dict(TINY_EN)
    settings.update(d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2)
    settings.update(decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32)
    folder = tmp_path_factory.mktemp("tiny-whisper")
    model = WhisperForConditionalGeneration(WhisperConfig(**settings))
    model.generation_config = WhisperForConditionalGeneration.from_pretrained(
        offline
    ).generation_config
    model.save_pretrained(folder)
    WhisperProcessor.from_pretrained(offline).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_ctc(tmp_path_factory) -> Path:
    """A randomly initialised two-layer wav2vec2 CTC model with a character vocabulary."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder = tmp_path_factory.mktemp("tiny-ctc")
    letters = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(letters)}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 8, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
        ctc_loss_reduction="mean",
    )
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    return folder
