"""``graft serve``'s options (graft.cli.serve): each refusal is one clear line, before any
model is loaded."""

from __future__ import annotations

import pytest

from graft.cli import main


@pytest.mark.parametrize(
    "options, message",
    [
        (["--queue-limit", "0"], "--queue-limit must be positive, got 0"),
        (["--timeout", "0"], "--timeout must be positive, got 0.0"),
        (["--workers", "0"], "--workers must be positive, got 0"),
        (["--max-batch", "-1"], "--max-batch must be positive, got -1"),
        (["--port", "70000"], "--port must be between 0 and 65535, got 70000"),
        (["--engine", "tflite"], "--engine must be one of auto, torch, onnx, torchscript"),
    ],
)
def test_serve_options_are_refused_in_one_line(options, message, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["graft", "serve", "/no/such/run", *options])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in " ".join(error.split()) and "Traceback" not in error


def test_a_missing_run_is_refused_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["graft", "serve", "/no/such/run", "--engine", "torch"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "/no/such/run" in capsys.readouterr().err
