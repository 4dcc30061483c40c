"""``graft tune`` and ``predict --ray`` on the shared flowers set (issue #36).

1. Two local studies of ``--trials`` trials on a class-balanced subset of
   ``flowers5_128px``: the feature-extract space and the fine-tune space
   (:data:`graft.tuning.space.PRESETS`), with their epochs narrowed so that both run in
   minutes on two CPU cores. Trial 0 of each study is graft's default fit for that strategy
   (fine-tune is graft's default), so "best against default" is read from the table. Time:
   the study's wall clock and the sum of its trials, against ten independent fits, estimated as
   ten times the first (cold-cache) trial of the feature-extract study (every independent fit
   runs the backbone over the data) and, for fine-tune, as the sum of the trials' times had none
   been pruned (each trial's seconds per epoch times its planned epochs).
2. ``predict --out`` here against ``predict --out --ray`` with one and two Ray workers (actors)
   on the same machine, with the best feature-extract model, on ``--predict-images`` photos.

Usage: ``python -P bench/tune.py [--per-class 40] [--trials 10] [--out bench/out/tune]`` (``-P``:
bench/profile.py would shadow the standard library's ``profile``, which torch imports).
Writes ``OUT/tune.json`` and prints the figures as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOWERS = ROOT.parent / "shared" / "datasets" / "flowers5_128px"


def subset(target: Path, per_class: int, val_per_class: int) -> Path:
    """The first ``per_class`` training and ``val_per_class`` validation photos of each class."""
    if target.exists():
        return target
    for split, count in (("train", per_class), ("val", val_per_class)):
        for folder in sorted((FLOWERS / split).iterdir()):
            (target / split / folder.name).mkdir(parents=True)
            for photo in sorted(folder.iterdir())[:count]:
                shutil.copy(photo, target / split / folder.name / photo.name)
    return target


def study(data: Path, out: Path, space: str, trials: int, image_size: int, **narrow) -> dict:
    from graft.tuning.study import tune

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = tune(data, out=out, trials=trials, space=space, image_size=image_size, **narrow)
    wall = time.perf_counter() - start
    rows = result.rows
    default = rows[0]
    return {
        "space": space,
        "narrowed": {k: list(v) if isinstance(v, tuple) else v for k, v in narrow.items()},
        "wall_seconds": round(wall, 1),
        "trial_seconds_sum": round(sum(r["seconds"] or 0 for r in rows), 1),
        "states": [r["state"] for r in rows],
        "default_score": default["score"],
        "default_state": default["state"],
        "best_score": None if result.best is None else result.best["score"],
        "best_trial": None if result.best is None else result.best["run_dir"],
        "best_params": None if result.best is None else result.best["params"],
        "rows": rows,
    }


def predict_throughput(run: Path, inputs: list[str], out: Path) -> dict:
    import ray

    import graft
    from graft.batch_prediction import predict_to_file
    from graft.ray_prediction import predict_on_ray

    model = graft.load(run)
    figures = {"engine": model.engine_name_, "images": None}
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    local = predict_to_file(model, inputs, out / "local.parquet", progress=False)
    figures["images"] = local.rows
    figures["local_per_second"] = round(local.throughput, 1)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    figures["ray_init_seconds"] = round(time.perf_counter() - start, 1)
    try:
        for workers in (1, 2):
            result = predict_on_ray(
                model, inputs, out / f"ray{workers}.parquet", workers=workers, progress=False
            )
            figures[f"ray_{workers}_per_second"] = round(result.throughput, 1)
            figures[f"ray_{workers}_seconds"] = round(result.seconds, 1)
    finally:
        ray.shutdown()
    figures["local_seconds"] = round(local.seconds, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--val-per-class", type=int, default=30)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--predict-images", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "tune")
    parser.add_argument("--run", type=Path, help="predict with this run (default: OUT/fe/best)")
    parser.add_argument("--skip", choices=("feature-extract", "fine-tune", "predict"), nargs="*")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    skip = set(args.skip or ())
    args.out.mkdir(parents=True, exist_ok=True)
    data = subset(args.out / "data", args.per_class, args.val_per_class)
    previous = args.out / "tune.json"
    results = json.loads(previous.read_text()) if skip and previous.is_file() else {}
    if "feature-extract" not in skip:
        results["feature_extract"] = study(
            data, args.out / "fe", "feature-extract", args.trials, args.image_size
        )
    if "fine-tune" not in skip:
        results["fine_tune"] = study(
            data, args.out / "ft", "fine-tune", args.trials, args.image_size,
            epochs=(1, 2),
        )  # fmt: skip
    if "predict" not in skip:
        photos = sorted(str(p) for p in (FLOWERS / "train").rglob("*.jpg"))
        inputs = photos[: args.predict_images]
        run = args.run or args.out / "fe" / "best"
        results["predict"] = predict_throughput(run, inputs, args.out / "pred")
    (args.out / "tune.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps({k: {n: v for n, v in r.items() if n != "rows"} for k, r in results.items()},
                     indent=2, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
