"""The head recipe of the few-labels regime: graft's head on frozen MiniLM features at several
epochs and learning rates, against scikit-learn's logistic regression, on all the examples.

    .venv/bin/python bench/fewshot_heads.py --sizes 8,64 --seeds 0,1,2

``sst2``: ``--sizes`` sentences per class drawn per seed as ``bench/compare.py`` and
``bench/fewshot.py`` draw them, no validation data (every example trains, each phase keeps its
last epoch: :mod:`graft.fewshot.few_labels`), tested on ``test.csv`` (872) through the frozen
features. The head arms are ``graft.fit(..., strategy="feature-extract", epochs=E, lr=LR)``;
``logreg`` is ``LogisticRegression(max_iter=1000)`` on the same features. Results go to
``--out`` and a table of means over seeds is printed.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path

import numpy as np
import subsets
import torch
from sklearn.linear_model import LogisticRegression

import graft
from graft.backbones import create_backbone
from graft.features import FeatureCache

RECIPES = ((30, 3e-3), (100, 3e-3), (300, 3e-3), (30, 3e-2), (100, 1e-2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,64")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("bench/out/fewshot_heads.json"))
    args = parser.parse_args()
    pool, _, test = subsets.sst2()
    backbone, cache = create_backbone("minilm"), FeatureCache()
    test_x = cache.features(backbone, test, 64, 0)
    rows = []
    for per_class in (int(s) for s in args.sizes.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            train = subsets.per_class(pool, per_class, seed)
            for epochs, lr in RECIPES:
                model = graft.fit(
                    train,
                    model="minilm",
                    strategy="feature-extract",
                    epochs=epochs,
                    lr=lr,
                    cv_folds=0,
                    progress=False,
                    seed=seed,
                )
                with torch.no_grad():
                    predicted = model.head_.eval()(test_x).argmax(1).numpy()
                accuracy = float(np.mean(predicted == test.labels))
                rows.append(
                    dict(
                        per_class=per_class,
                        seed=seed,
                        arm=f"head {epochs} ep, lr {lr:g}",
                        acc=accuracy,
                    )
                )
            train_x = cache.features(backbone, train, 64, 0).numpy()
            regression = LogisticRegression(max_iter=1000).fit(train_x, train.labels)
            accuracy = float(regression.score(test_x.numpy(), test.labels))
            rows.append(dict(per_class=per_class, seed=seed, arm="logreg", acc=accuracy))
    args.out.write_text(json.dumps(rows, indent=1))
    groups = collections.defaultdict(list)
    for row in rows:
        groups[(row["per_class"], row["arm"])].append(row["acc"])
    print("| per class | arm | seeds | test accuracy |\n|---|---|---|---|")
    for (per_class, arm), values in sorted(groups.items()):
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        mean = statistics.mean(values)
        print(f"| {per_class} | {arm} | {len(values)} | {mean:.4f} ± {spread:.4f} |")


if __name__ == "__main__":
    main()
