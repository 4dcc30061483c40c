"""Recommendation on MovieLens small: graft against popularity, item-kNN and ALS.

Each user's last rating (by timestamp) is held out as the test set; everything else is what
every model is fitted on. graft fits ``task="recommendation"`` on it (movies' text: title and
genres, embedded by the offline MiniLM; validation: each user's last remaining rating), and
``graft evaluate`` scores graft and the baselines (popularity, item-kNN with cosine, ``implicit``'s
ALS, fitted on the same ratings) by the same code: nDCG@10, recall@10 and hit rate @10 of the
held-out movie among the movies the user has not rated, and the same for the held-out movies
nobody rated in training ("cold").

    .venv/bin/python bench/recommendation.py --epochs 2 --out bench/out/recommendation.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "movielens_latest_small"


def hold_out_last(folder: Path, users: int | None) -> tuple[Path, Path]:
    """``train.csv`` and ``test.csv`` in ``folder``: each user's last rating held out (the
    first ``users`` users only, when given)."""
    import pandas as pd

    ratings = pd.read_csv(MOVIELENS / "ratings.csv")
    if users is not None:
        ratings = ratings[ratings.userId.isin(sorted(ratings.userId.unique())[:users])]
    ratings = ratings.sort_values(["userId", "timestamp"], kind="stable")
    last = ratings.groupby("userId").tail(1)
    train, test = folder / "train.csv", folder / "test.csv"
    ratings.drop(last.index).to_csv(train, index=False)
    last.to_csv(test, index=False)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--users", type=int, default=None, help="only the first USERS users")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/recommendation.json"))
    args = parser.parse_args()

    import graft

    with tempfile.TemporaryDirectory(prefix="graft-rec-") as scratch:
        train, test = hold_out_last(Path(scratch), args.users)
        started, cpu = time.perf_counter(), time.process_time()
        model = graft.fit(
            str(train),
            task="recommendation",
            items=str(MOVIELENS / "movies.csv"),
            epochs=args.epochs,
            seed=args.seed,
        )
        fit_seconds, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        metrics = model.evaluate(str(test))  # also fits and scores the baselines
        evaluate_seconds, evaluate_cpu = time.perf_counter() - started, time.process_time() - cpu
    result = {
        "epochs": args.epochs,
        "users": args.users,
        "fit_seconds": round(fit_seconds, 1),
        "evaluate_seconds": round(evaluate_seconds, 1),
        "fit_cpu_seconds": round(fit_cpu, 1),
        "evaluate_cpu_seconds": round(evaluate_cpu, 1),
        "guard": model.metrics_.get("guard"),
        "val": model.metrics_.get("val"),
        "test": metrics,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    rows = {"graft": metrics, **metrics.get("baselines", {})}
    print(f"{'model':<12} {'nDCG@10':>8} {'recall@10':>9} {'hit@10':>7} | cold recall@10 nDCG@10")
    for name, values in rows.items():
        cold = values["cold"]
        print(
            f"{name:<12} {values['ndcg@10']:8.4f} {values['recall@10']:9.4f} "
            f"{values['hit@10']:7.4f} | {cold['recall@10']:14.4f} {cold['ndcg@10']:7.4f}"
        )
    print(
        f"users {metrics['users']} (cold {metrics['cold']['users']}); graft's fit "
        f"{fit_seconds:.0f} s ({fit_cpu:.0f} CPU s); evaluation with the baselines' fits "
        f"{evaluate_seconds:.0f} s ({evaluate_cpu:.0f} CPU s)"
    )


if __name__ == "__main__":
    main()
