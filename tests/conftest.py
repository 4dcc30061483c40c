"""Shared fixtures and helpers: real data subsets (the repository's example photos, the shared
SST-2 set, Amazon reviews), writing tables, snapshots of weights, and the ``slow`` marker (a
test that trains or reads a real dataset for more than a few seconds; ``pytest -m "not slow"``
is the quick check)."""

from __future__ import annotations

import csv
import os
import random
import shutil
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # workers share the cores: one thread each
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "flowers"
SHARED = Path(os.environ.get("GRAFT_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Every test session gets an empty feature cache of its own."""
    previous = os.environ.get("GRAFT_CACHE_DIR")
    os.environ["GRAFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("graft-cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    yield
    if previous is None:
        os.environ.pop("GRAFT_CACHE_DIR", None)
    else:
        os.environ["GRAFT_CACHE_DIR"] = previous


def copy_flowers(target: Path, per_class: dict[str, int]) -> Path:
    """A ``train/``/``val/`` folder with the first N example photos of each class per split."""
    for split, count in per_class.items():
        for name in CLASSES:
            folder = target / split / name
            folder.mkdir(parents=True)
            for photo in sorted((EXAMPLES / split / name).iterdir())[:count]:
                shutil.copy(photo, folder / photo.name)
    return target


@pytest.fixture(scope="session")
def flowers() -> Path:
    """The repository's example photos: 50 training and 20 validation photos per class."""
    return EXAMPLES


@pytest.fixture(scope="session")
def tiny_flowers(tmp_path_factory) -> Path:
    """8 training and 4 validation photos per class, for plumbing tests."""
    return copy_flowers(tmp_path_factory.mktemp("tiny-flowers"), {"train": 8, "val": 4})


def write_sst2(source: str, rows: int, target: Path, seed: int = 0) -> Path:
    path = SHARED / "sst2" / source
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is not available")
    with open(path, newline="") as handle:
        records = list(csv.DictReader(handle))
    random.Random(seed).shuffle(records)
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in records[:rows])
    return target


@pytest.fixture(scope="session")
def sst2(tmp_path_factory) -> dict[str, Path]:
    """1,000 SST-2 training sentences and 300 of its labelled test sentences, as CSV files."""
    folder = tmp_path_factory.mktemp("sst2")
    return {
        "train": write_sst2("train.csv", 1000, folder / "train.csv"),
        "test": write_sst2("test.csv", 300, folder / "test.csv"),
    }


AMAZON = SHARED / "amazon_reviews_4domains"
DOMAINS = ("books", "dvd", "electronics", "kitchen")


def amazon_records(domain: str) -> list[dict[str, str]]:
    """Every review of one domain of the shared Amazon set (the test is skipped without it)."""
    path = AMAZON / f"{domain}.csv"
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is not available")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> Path:
    """``rows`` as a CSV table with the columns ``fields`` (other keys left out)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def snapshot(module) -> dict:
    """A copy of ``module``'s weights, to compare after training."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
