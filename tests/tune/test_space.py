"""Search spaces: the default space of each kind, presets, YAML files and keyword arguments,
conditional options, and one-line errors that name the file and the option."""

from __future__ import annotations

import optuna
import pytest

from graft.errors import ConfigError
from graft.tuning.space import DEFAULTS_FLAG, build_space, default_space, parse_param
from graft.tuning.study import _known_options

KNOWN = _known_options()


def draws(space, count):
    """The options of ``count`` trials of a fresh in-memory study of ``space``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return [space.suggest(study.ask()) for _ in range(count)]


def test_the_first_trial_is_graft_defaults_and_later_ones_draw_within_the_space():
    space = build_space(None, "multiclass", "image", {"seed": 3}, KNOWN)
    first, *others = draws(space, 30)
    assert first == {"seed": 3, DEFAULTS_FLAG: True}
    for options in others:
        assert options["strategy"] in ("feature-extract", "fine-tune")
        assert 1e-4 <= options["lr"] <= 3e-2 and options["batch_size"] in (16, 32, 64)
        # conditional: the backbone's options only where the backbone trains
        assert ("layer_decay" in options) == (options["strategy"] == "fine-tune")
    assert {o["strategy"] for o in others} == {"feature-extract", "fine-tune"}


def test_texts_search_lora_with_its_rank_and_dense_kinds_their_own_space():
    text = build_space(None, "multiclass", "text", {}, KNOWN)
    for options in draws(text, 40)[1:]:
        assert ("lora_rank" in options) == (options["strategy"] == "lora")
    assert "strategy" not in default_space("detection", "image")
    assert "lr" in default_space("tagging", "text")


def test_yaml_file_and_keyword_arguments_override_the_space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "strategy: feature-extract\n"
        "lr: {low: 1e-3, high: 1e-1, log: true}\n"  # YAML reads 1e-3 as text: still a number
        "batch_size: [8, 16]\n"
        "epochs: {low: 2, high: 4}\n"
    )
    space = build_space(
        path, "multiclass", "image", {"epochs": 3, "weight_decay": (0.0, 0.1)}, KNOWN
    )
    assert space.fixed == {"strategy": "feature-extract", "epochs": 3}
    assert space.names() == ["lr", "batch_size", "weight_decay"]
    for options in draws(space, 10)[1:]:
        assert 1e-3 <= options["lr"] <= 1e-1 and options["batch_size"] in (8, 16)
        assert isinstance(options["epochs"], int) and options["epochs"] == 3
        assert 0.0 <= options["weight_decay"] <= 0.1
    preset = build_space("fine-tune", "multiclass", "image", {}, KNOWN)
    assert preset.fixed["strategy"] == "fine-tune" and "layer_decay" in preset.names()


@pytest.mark.parametrize(
    "text, message",
    [
        ("lrr: [1, 2]\n", "'lrr' is not an option of graft fit"),
        ("lr: {low: 0.1, high: 0.01}\n", "lr needs numbers low < high"),
        ("lr: {low: 0, high: 1, log: true}\n", "log scale needs low > 0"),
        ("lr: {low: 0.1, hi: 1}\n", "unknown key"),
        ("- lr\n", "maps option names"),
    ],
)
def test_a_broken_space_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        build_space(path, "multiclass", "image", {}, KNOWN)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="no such file"):
        build_space(tmp_path / "missing.yaml", "multiclass", "image", {}, KNOWN)


def test_entries_parse_as_ranges_choices_or_fixed_values():
    assert parse_param("epochs", {"low": 1, "high": 5}).low == 1
    assert parse_param("augment", ["none", "light"]).choices == ("none", "light")
    assert parse_param("augment", "light") is None  # fixed
    rank = parse_param("lora_rank", {"choices": [4, 8], "when": {"strategy": "lora"}})
    assert rank.applies({"strategy": "lora"}) and not rank.applies({"strategy": "fine-tune"})
