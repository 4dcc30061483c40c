"""The fit and pretrain options are the configurations' fields: the same names, defaults and
help texts, so the command line and Python cannot drift apart."""

from __future__ import annotations

import dataclasses

import pytest
import typer.main

from graft.cli import app
from graft.config import FitConfig
from graft.options import command_line_fields, flag_name
from graft.pretraining.config import PretrainConfig


def command(name: str):
    group = typer.main.get_command(app)
    return group.commands[name]


@pytest.mark.parametrize(("name", "config"), [("fit", FitConfig), ("pretrain", PretrainConfig)])
def test_every_option_of_the_configuration_is_offered_as_declared(name, config):
    params = {p.name: p for p in command(name).params}
    fields = command_line_fields(config)
    assert fields, "the configuration declares its options"
    for field in fields:
        param = params[field.name]
        assert flag_name(field) in param.opts
        if field.metadata.get("fallback") is None:
            assert param.help == field.metadata["help"]
        else:  # a default of the kind of task: the help says it
            assert param.help.startswith(field.metadata["help"].rstrip("."))
            assert f"(default {field.metadata['fallback']}" in param.help
        expected = field.default
        if field.metadata.get("cli_type") is str and expected is not None:
            expected = str(expected)
        assert param.default == expected, field.name
    hidden = {f.name for f in dataclasses.fields(config)} - {f.name for f in fields}
    assert not hidden & set(params), "options only Python sets are not offered"


def test_a_number_given_as_text_on_the_command_line_is_the_configuration_number():
    assert FitConfig(lr="3e-3").validate().lr == FitConfig().with_defaults().lr == 3e-3
    assert FitConfig(lr="auto").validate().lr == "auto"


def test_the_help_of_an_option_whose_default_depends_on_the_kind_shows_each_default():
    params = {p.name: p for p in command("fit").params}
    assert params["batch_size"].help == (
        "Examples per step (default 32; detection and instance-segmentation 4, segmentation 8)."
    )
    assert "(default 0.1; segmentation 0.0)" in params["label_smoothing"].help


def test_boolean_options_can_be_turned_off():
    opts = {p.name: p for p in command("fit").params}
    assert "--no-adapt-guard" in opts["adapt_guard"].secondary_opts
    assert "--no-progress" in opts["progress"].secondary_opts


def test_fit_help_groups_its_options_in_panels_a_kind_each():
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["fit", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    titles = ["Data", "Model and strategy", "Training", "Adaptation", "Few labels", "Audio"]
    titles += ["Detection", "Segmentation", "Output"]
    places = [result.output.find(f"─ {title} ─") for title in titles]
    assert -1 not in places, dict(zip(titles, places, strict=True))
    assert places == sorted(places), "panels in the order of a fit's story, output last"
    detection = result.output[places[6] : places[7]]
    assert "--detector" in detection and "--architecture" not in detection


def test_every_kind_option_is_offered_in_its_panel_and_given_only_when_named():
    from graft.config import kind_option_owners

    params = {p.name: p for p in command("fit").params}
    owners = kind_option_owners()
    assert {"detector", "architecture", "loss", "binary_masks", "ignore_index"} <= set(owners)
    for name, (options, kinds) in owners.items():
        field = next(f for f in dataclasses.fields(options) if f.name == name)
        param = params[name]
        assert flag_name(field) in param.opts
        assert param.rich_help_panel == field.metadata["panel"] is not None
        assert param.default is None, "a kind's option is not passed unless given"
        assert all(kind in param.help for kind in kinds)


def test_a_fit_on_the_command_line_passes_no_option_of_another_kind(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import graft.api

    seen = {}

    def fake_fit(data, val, test, **options):
        seen.update(options)
        raise graft.errors.GraftError("stop here")

    monkeypatch.setattr(graft.api, "fit", fake_fit)
    result = CliRunner().invoke(app, ["fit", str(tmp_path), "--loss", "dice"])
    assert "stop here" in str(result.exception) or "stop here" in result.output
    assert seen["loss"] == "dice"
    assert not {"detector", "architecture", "binary_masks", "ignore_index"} & set(seen)


def test_every_option_declares_its_help_panel():
    for field in command_line_fields(FitConfig):
        assert field.metadata["panel"], field.name
