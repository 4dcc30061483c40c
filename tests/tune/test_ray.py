"""``graft tune --ray`` on a Ray of two CPUs this test starts: the trials run as Ray Tune
trials with Optuna's search, the best is at least as good as graft's default fit, and a trial
with a bad option is a failed row while the study goes on."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

import graft
from graft.cli import app
from graft.tuning.study import tune

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
SPACE = (
    "strategy: feature-extract\n"
    "lr: {low: 1e-3, high: 3e-2, log: true}\n"
    "epochs: {low: 5, high: 40}\n"
)


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_search_on_ray_finds_options_at_least_as_good_as_the_defaults(cluster, flowers, tmp_path):
    space, out = tmp_path / "space.yaml", tmp_path / "study"
    space.write_text(SPACE)
    args = ["tune", str(flowers), "--out", str(out), "--trials", "3", "--space", str(space)]
    result = CliRunner().invoke(app, [*args, "--image-size", "64", "--pruner", "none", "--ray"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "trials.json").read_text())
    assert len(rows) == 3 and {r["state"] for r in rows} == {"COMPLETE"}
    assert rows[0]["defaults"] and all(r["run_dir"].startswith("trial-") for r in rows)
    assert list(out.glob("ray-*/experiment_state-*.json"))  # Ray Tune ran them, in --out
    default = graft.fit(flowers, strategy="feature-extract", image_size=64, progress=False,
                        cache_dir=str(out / "cache"))  # fmt: skip
    best = graft.load(out / "best")
    assert best.metrics_["val"]["accuracy"] >= default.metrics_["val"]["accuracy"] - 1e-6
    assert best.metrics_["val"]["accuracy"] > 0.5  # five classes: far above chance


def test_a_bad_option_fails_its_trial_on_ray_and_the_study_goes_on(cluster, tiny_flowers, tmp_path):
    space = {"strategy": "feature-extract", "epochs": 2, "augment": ["sideways"]}
    result = tune(tiny_flowers, out=tmp_path / "study", trials=3, space=space, image_size=64,
                  ray="auto", pruner="asha", trial_resources="cpu=1")  # fmt: skip
    assert [row["state"] for row in result.rows] == ["COMPLETE", "FAIL", "FAIL"]
    assert all("augment" in row["error"] for row in result.rows[1:])
    assert result.best["defaults"] and (tmp_path / "study" / "best").is_dir()
