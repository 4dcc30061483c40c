"""A generative reader: a tiny random T5 with a word-level tokenizer built from the questions
learns to write the answers of training questions it sees repeatedly (exact match above a
measured floor), LoRA trains only its adapters by default, save and load give identical
answers, and a decoder-only model is refused in one line. No pretrained generative model
installs offline, so nothing here measures answering unseen questions."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

import graft
from graft.errors import ConfigError
from graft.tasks.question_answering.read import read_questions

SQUAD = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "squad_v1_subset"
pytestmark = pytest.mark.skipif(not SQUAD.is_dir(), reason="squad_v1_subset not available")

QUESTIONS = 10
REPEATS = 6
WINDOW = 48


def save_tiny_t5(folder: Path, texts: list[str]) -> Path:
    """A random 2-layer T5 (width 32) and a lower-cased word-level tokenizer of ``texts``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = sorted(
        {w for t in texts for w, _ in pre_tokenizers.Whitespace().pre_tokenize_str(t.lower())}
    )
    vocab = {token: i for i, token in enumerate(["<pad>", "</s>", "<unk>", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    import torch

    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def questions():
    return read_questions(SQUAD / "train.json").subset(range(QUESTIONS))


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory, questions):
    texts = [*questions.questions, *questions.contexts]
    texts += [text for answers in questions.answers for text, _ in answers]
    return save_tiny_t5(tmp_path_factory.mktemp("t5") / "tiny-t5", texts)


def fit(questions, folder, out, **options):
    """A fit on ``questions`` seen ``REPEATS`` times each, validated on them once."""
    train = questions.subset(list(range(len(questions))) * REPEATS)
    return graft.fit(
        train,
        val=questions,
        task="question-answering",
        model=str(folder),
        out=out,
        batch_size=8,
        lr=1e-2,
        max_length=WINDOW,
        progress=False,
        **options,
    )


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, questions, tiny_t5):
    """The default strategy (LoRA), trained long enough to memorise the answers."""
    out = tmp_path_factory.mktemp("generative") / "lora"
    return fit(questions, tiny_t5, out, epochs=8), out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, questions, tiny_t5):
    """``--strategy full``, one epoch."""
    out = tmp_path_factory.mktemp("generative") / "full"
    return fit(questions, tiny_t5, out, epochs=1, strategy="full"), out


@pytest.mark.slow
def test_lora_is_the_default_and_trains_only_adapters(lora_run):
    model, out = lora_run
    assert model.strategy_ == "lora"
    backbone = model.backbone_
    adapters = sum(p.numel() for p in backbone.adapter_parameters())
    assert adapters == model.history_[-1]["trained_parameters"]
    assert 0 < adapters < backbone.num_parameters() / 3
    assert sum(p.numel() for p in model.head_.parameters()) == 0
    adapted = {
        n.split(".lora_")[0].rsplit(".", 1)[-1] for n in backbone.state_dict() if "lora_" in n
    }
    assert adapted == {"q", "k", "v", "o"}  # T5's attention projections only
    saved = load_file(str(out / "model.safetensors"))
    assert saved and all(name.startswith("adapter.") for name in saved)


@pytest.mark.slow
def test_training_answers_are_generated(lora_run, questions):
    model, _ = lora_run
    metrics = model.evaluate(questions)
    # measured: exact match 0.4 after 8 epochs of LoRA (a random model's answers score 0)
    assert metrics["exact_match"] >= 0.3, metrics
    found = model.predict(questions.items[:3])
    assert all(answer["start"] is None and answer["end"] is None for answer in found)
    assert all(isinstance(answer["answer"], str) for answer in found)


@pytest.mark.slow
def test_lora_run_saved_and_loaded_gives_identical_answers(lora_run, questions):
    model, out = lora_run
    assert graft.load(out).predict(questions.items) == model.predict(questions.items)


def test_full_trains_every_weight_and_loads_identically(full_run, questions):
    model, out = full_run
    assert model.strategy_ == "full"
    assert model.history_[-1]["trained_parameters"] == model.backbone_.num_parameters()
    assert any(name.startswith("backbone.") for name in load_file(str(out / "model.safetensors")))
    loaded = graft.load(out)
    assert loaded.predict(questions.items) == model.predict(questions.items)
    assert loaded.evaluate(questions) == model.evaluate(questions)


def test_long_contexts_are_cut_with_a_warning(tiny_t5, questions, caplog):
    from graft.tasks.question_answering.generated import warn_cut

    with caplog.at_level("WARNING", logger="graft"):
        cut = warn_cut(str(tiny_t5), questions.items, 32)
    assert cut == QUESTIONS
    assert f"{QUESTIONS} of {QUESTIONS} questions" in caplog.text


def test_a_decoder_only_model_is_refused(tmp_path, questions):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50)).save_pretrained(
        tmp_path / "gpt"
    )
    with pytest.raises(ConfigError, match="decoder-only language model") as error:
        graft.fit(questions, task="question-answering", model=str(tmp_path / "gpt"), epochs=1)
    assert "\n" not in str(error.value)
