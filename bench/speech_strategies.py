"""Each strategy of the transcription kind measured on speechocean762_adults: the encoder
frozen (``feature-extract``: the decoder trains), ``fine-tune`` (the decoder and the top half
of the encoder's blocks; graft's default), ``full``, ``lora``, and the default without
SpecAugment. Same data (a spread subset of train and test, as ``bench/speech.py
--train-limit/--test-limit`` takes), seed and epochs; test WER, the kept phase and CPU time
of each. Usage::

    OMP_NUM_THREADS=1 python bench/speech_strategies.py --train-limit 120 --test-limit 40 \\
        --epochs 1 --out bench/out/speech_strategies.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

from speech import DATA, limited  # noqa: E402  (bench/speech.py: the same subsets)

ARMS = {
    "feature-extract": {"strategy": "feature-extract"},
    "fine-tune": {"strategy": "fine-tune"},
    "full": {"strategy": "full"},
    "lora": {"strategy": "lora"},
    "fine-tune without SpecAugment": {"strategy": "fine-tune", "spec_augment": 0.0},
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=120)
    parser.add_argument("--test-limit", type=int, default=40)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--out", type=Path, default=Path("bench/out/speech_strategies.json"))
    args = parser.parse_args()
    import graft

    data = str(limited(args))
    results = {}
    for arm in args.arms.split(","):
        started, cpu = time.perf_counter(), cpu_seconds()
        with tempfile.TemporaryDirectory() as out:
            model = graft.fit(
                data, task="transcription", epochs=args.epochs, seed=args.seed,
                out=str(Path(out) / "run"), num_workers=0, progress=False, **ARMS[arm],
            )  # fmt: skip
        guard = model.metrics_.get("guard", {})
        results[arm] = {
            "test_wer": model.metrics_["test"]["wer"],
            "val_wer": model.metrics_["val"]["wer"],
            "pretrained_val_wer": 1 - guard["pretrained_val_score"] if guard else None,
            "kept_pretrained": guard.get("kept_pretrained"),
            "cpu_seconds": round(cpu_seconds() - cpu, 1),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        print(arm, json.dumps(results[arm]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
