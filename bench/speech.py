"""Speech recognition on speechocean762_adults: graft's transcription kind against the
pretrained model as it is and against the Hugging Face recipe for the same model.

Three arms, each in a subprocess of its own (so that its peak memory is its own), on the
same data (the dataset's train/ and test/: test speakers are not in train), seed and
normaliser (Whisper's English normaliser, :mod:`graft.tasks.transcription.metrics`):

- ``zero-shot``: graft's offline ``whisper-tiny.en`` scored as it is on test
  (``graft evaluate whisper-tiny.en DATA --task transcription``);
- ``graft``: ``graft fit DATA --task transcription`` with its defaults (fine-tune: the
  decoder and the top half of the encoder's blocks, lr 5e-5 with a 10% warm-up, batches of
  8, SpecAugment 0.05, the epoch of best validation WER kept, validation: 10% of the
  training speakers) and ``--epochs`` epochs;
- ``recipe``: the "fine-tune Whisper" guide's ``Seq2SeqTrainer`` on all of train (lr 1e-5,
  warm-up 10% of the steps, linear decay, batches of 8, the same epochs, no SpecAugment;
  labels as written), its model at the end scored on test with greedy decoding.

Each arm reports test WER and CER, wall time (seconds, reading data and scoring included)
and peak resident memory (``ru_maxrss``). Usage::

    OMP_NUM_THREADS=2 python bench/speech.py --epochs 2 --out bench/out/speech.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/ holds a profile.py, which would shadow the standard library's (torch imports it)
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "speechocean762_adults"
MODEL = "whisper-tiny.en"


def limited(args) -> Path:
    """The data, or an audiofolder of every k-th utterance of train and test when
    ``--train-limit`` / ``--test-limit`` are given (absolute paths; speakers kept spread)."""
    if not (args.train_limit or args.test_limit):
        return args.data
    import csv

    root = Path(tempfile.mkdtemp(prefix="speech-bench-"))
    for split, limit in (("train", args.train_limit), ("test", args.test_limit)):
        with open(args.data / split / "metadata.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        if limit:
            rows = rows[:: max(1, len(rows) // limit)][:limit]
        (root / split).mkdir()
        with open(root / split / "metadata.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "text"])
            for row in rows:
                writer.writerow([str(args.data / split / row["file_name"]), row["text"]])
    return root


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User and system CPU time of this process so far (robust to other jobs' load)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def zero_shot(args) -> dict:
    from graft.tasks.transcription.evaluate import evaluate_model

    start = time.perf_counter()
    metrics = evaluate_model(MODEL, limited(args))
    return {"wer": metrics["wer"], "cer": metrics["cer"], "seconds": time.perf_counter() - start}


def graft_fit(args) -> dict:
    import graft

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        model = graft.fit(
            str(limited(args)), task="transcription", epochs=args.epochs, seed=args.seed,
            out=str(Path(out) / "run"), num_workers=0,
        )  # fmt: skip
    test = model.metrics_["test"]
    guard = model.metrics_.get("guard", {})
    return {
        "wer": test["wer"],
        "cer": test["cer"],
        "seconds": time.perf_counter() - start,
        "pretrained_val_wer": 1 - guard["pretrained_val_score"] if guard else None,
        "kept": model.summary_.get("kept_phase") if hasattr(model, "summary_") else None,
    }


def recipe(args) -> dict:
    """The "fine-tune Whisper" guide's recipe (Seq2SeqTrainer) on the same data and model."""
    import numpy as np
    import torch
    from transformers import (
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    from graft.tasks.transcription.batches import ClipsDataset
    from graft.tasks.transcription.ctranslate2_whisper import offline_model_path
    from graft.tasks.transcription.metrics import error_rates
    from graft.tasks.transcription.read import read_speech

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    folder = offline_model_path()
    processor = WhisperProcessor.from_pretrained(folder)
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    data = limited(args)
    train, test = read_speech(data / "train"), read_speech(data / "test")

    class Prepared(torch.utils.data.Dataset):  # the guide's prepare_dataset, lazily
        def __init__(self, data):
            self.clips = ClipsDataset(data.paths, data.texts)

        def __len__(self):
            return len(self.clips)

        def __getitem__(self, i):
            wave, text = self.clips[i]
            features = processor.feature_extractor(wave, sampling_rate=16000).input_features[0]
            return {"input_features": features, "labels": processor.tokenizer(text).input_ids}

    def collate(rows):  # the guide's DataCollatorSpeechSeq2SeqWithPadding
        features = [{"input_features": r["input_features"]} for r in rows]
        batch = processor.feature_extractor.pad(features, return_tensors="pt")
        labels = processor.tokenizer.pad(
            [{"input_ids": r["labels"]} for r in rows], return_tensors="pt"
        )
        ids = labels["input_ids"].masked_fill(labels.attention_mask.ne(1), -100)
        if (ids[:, 0] == model.config.decoder_start_token_id).all().cpu().item():
            ids = ids[:, 1:]
        batch["labels"] = ids
        return batch

    steps = -(-len(train) // 8) * args.epochs  # warm-up: a tenth of the steps
    with tempfile.TemporaryDirectory() as out:
        training = Seq2SeqTrainingArguments(
            output_dir=out, per_device_train_batch_size=8, learning_rate=1e-5,
            warmup_steps=max(1, steps // 10), num_train_epochs=args.epochs, seed=args.seed,
            save_strategy="no", report_to=[], logging_steps=25,
            remove_unused_columns=False, dataloader_num_workers=0,
        )  # fmt: skip
        trainer = Seq2SeqTrainer(
            model=model, args=training, train_dataset=Prepared(train), data_collator=collate
        )
        trainer.train()
    model.eval()
    hypotheses = []
    with torch.inference_mode():
        for at in range(0, len(test), 16):
            clips = ClipsDataset(test.paths[at : at + 16], None)
            waves = [clips[i][0] for i in range(len(clips))]
            features = processor.feature_extractor(waves, sampling_rate=16000, return_tensors="pt")
            ids = model.generate(input_features=features.input_features, max_new_tokens=128)
            hypotheses += processor.batch_decode(ids, skip_special_tokens=True)
    scored = error_rates(test.texts, hypotheses)
    del np
    return {"wer": scored["wer"], "cer": scored["cer"], "seconds": time.perf_counter() - start}


ARMS = {"zero-shot": zero_shot, "graft": graft_fit, "recipe": recipe}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arm", choices=sorted(ARMS))
    parser.add_argument("--train-limit", type=int, default=0, help="train utterances (0: all)")
    parser.add_argument("--test-limit", type=int, default=0, help="test utterances (0: all)")
    parser.add_argument(
        "--parallel", action="store_true", help="run the arms at once (a busy machine)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/speech.json"))
    args = parser.parse_args()
    if args.arm:  # one arm, in this process
        result = ARMS[args.arm](args)
        result["peak_mb"] = peak_mb()
        result["cpu_seconds"] = cpu_seconds()
        print("RESULT " + json.dumps(result), flush=True)
        return
    results: dict = {}
    running = {}
    for arm in ARMS:
        command = [sys.executable, __file__, "--arm", arm, "--data", str(args.data)]
        command += ["--epochs", str(args.epochs), "--seed", str(args.seed)]
        command += ["--train-limit", str(args.train_limit), "--test-limit", str(args.test_limit)]
        running[arm] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if not args.parallel:
            results[arm] = _collect(arm, running.pop(arm))
    for arm, process in running.items():
        results[arm] = _collect(arm, process)
    results.update(epochs=args.epochs, seed=args.seed, parallel=args.parallel)
    results.update(train_limit=args.train_limit, test_limit=args.test_limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


def _collect(arm: str, process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate()
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        print(stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"arm {arm} failed")
    result = json.loads(lines[-1][len("RESULT ") :])
    print(arm, result, flush=True)
    return result


if __name__ == "__main__":
    main()
