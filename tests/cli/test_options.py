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
        assert param.help == field.metadata["help"]
        expected = field.default
        if field.metadata.get("cli_type") is str and expected is not None:
            expected = str(expected)
        assert param.default == expected, field.name
    hidden = {f.name for f in dataclasses.fields(config)} - {f.name for f in fields}
    assert not hidden & set(params), "options only Python sets are not offered"


def test_a_number_given_as_text_on_the_command_line_is_the_configuration_number():
    assert FitConfig(lr="3e-3").validate().lr == FitConfig().validate().lr == 3e-3
    assert FitConfig(lr="auto").validate().lr == "auto"


def test_boolean_options_can_be_turned_off():
    opts = {p.name: p for p in command("fit").params}
    assert "--no-adapt-guard" in opts["adapt_guard"].secondary_opts
    assert "--no-progress" in opts["progress"].secondary_opts
