"""DataFrames, ``datasets`` and Parquet files read exactly as the same rows in a CSV: the same
data, the same fitted predictions, the same errors; images held in a column stored once."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import graft
from graft.data import load_data, load_inputs, load_splits
from graft.data.frames import image_store, store_image
from graft.data.images import open_rgb
from graft.data.sources import read_one
from graft.errors import ConfigError, DataError
from graft.tasks.classification.multitask_data import load_multitask
from tests.conftest import EXAMPLES, SHARED

pd = pytest.importorskip("pandas")
datasets = pytest.importorskip("datasets")
pytest.importorskip("pyarrow")

FORMS = ("csv", "DataFrame", "datasets.Dataset", "parquet")


def sst2_records(count: int) -> list[dict[str, str]]:
    path = SHARED / "sst2" / "train.csv"
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is not available")
    with open(path, newline="") as handle:
        return [row for _, row in zip(range(count), csv.DictReader(handle), strict=False)]


def write_csv(path: Path, records: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


def forms_of(folder: Path, records: list[dict], frame=None) -> dict:
    """The same rows as a CSV file, a DataFrame, a ``datasets.Dataset`` and a Parquet file
    (``frame``, when given, is the DataFrame: its cells may be typed where the CSV's are text)."""
    frame = pd.DataFrame(records) if frame is None else frame
    frame.to_parquet(folder / "table.parquet", index=False)
    return {
        "csv": write_csv(folder / "table.csv", records),
        "DataFrame": frame,
        "datasets.Dataset": datasets.Dataset.from_pandas(frame, preserve_index=False),
        "parquet": folder / "table.parquet",
    }


@pytest.fixture
def text_forms(tmp_path) -> dict:
    """60 SST-2 rows in each form; the DataFrame's labels are integers, the CSV's text."""
    records = sst2_records(60)
    frame = pd.DataFrame(records).astype({"label": int})
    return forms_of(tmp_path, records, frame)


@pytest.fixture
def photos(tmp_path) -> list[tuple[Path, str]]:
    """Three example photos of each of three classes, copied under ``tmp_path/img``."""
    (tmp_path / "img").mkdir()
    found = []
    for name in ("daisy", "roses", "tulips"):
        for photo in sorted((EXAMPLES / "train" / name).iterdir())[:3]:
            found.append((Path(shutil.copy(photo, tmp_path / "img" / photo.name)), name))
    return found


def same_data(data, expected) -> None:
    assert data.items == expected.items
    np.testing.assert_array_equal(data.labels, expected.labels)
    assert (data.classes, data.task, data.modality) == (
        expected.classes,
        expected.task,
        expected.modality,
    )


def pixels(path: str) -> np.ndarray:
    return np.asarray(open_rgb(path))


# The same data ----------------------------------------------------------------------------------


def test_a_text_table_reads_the_same_in_every_form(text_forms):
    read = {form: load_data(source) for form, source in text_forms.items()}
    assert len(read["csv"]) == 60 and read["csv"].classes == ["0", "1"]
    for form in FORMS:
        same_data(read[form], read["csv"])
    assert read["DataFrame"].source == "DataFrame"
    assert read["datasets.Dataset"].source == "datasets.Dataset"
    assert read["parquet"].source == str(text_forms["parquet"])


def test_an_image_table_of_paths_reads_the_same_in_every_form(tmp_path, photos, monkeypatch):
    relative = [{"image": f"img/{p.name}", "label": label} for p, label in photos]
    forms = forms_of(tmp_path, relative)  # CSV and Parquet: paths from the table's folder
    absolute = pd.DataFrame([{"image": str(p), "label": label} for p, label in photos])
    forms["DataFrame"] = absolute  # in memory: absolute paths ...
    forms["datasets.Dataset"] = datasets.Dataset.from_pandas(absolute)
    monkeypatch.chdir(tmp_path)
    forms["relative DataFrame"] = pd.DataFrame(relative)  # ... or from the current folder
    read = {form: load_data(source) for form, source in forms.items()}
    assert read["csv"].modality == "image" and len(read["csv"]) == 9
    assert read["csv"].items[0] == str(photos[0][0])
    for data in read.values():
        same_data(data, read["csv"])


def test_images_held_in_a_column_are_stored_once_and_read_the_same(tmp_path, photos):
    expected = load_data(
        write_csv(tmp_path / "t.csv", [{"image": f"img/{p.name}", "label": y} for p, y in photos])
    )
    in_memory = pd.DataFrame([{"image": Image.open(p), "label": y} for p, y in photos])
    data = load_data(in_memory)
    np.testing.assert_array_equal(data.labels, expected.labels)
    assert data.classes == expected.classes and data.modality == "image"
    for stored, original in zip(data.items, expected.items, strict=True):
        path = Path(stored)  # lossless PNG, content-addressed under $GRAFT_CACHE_DIR/images
        assert path.parent.parent == image_store() and path.suffix == ".png"
        assert path.stem == hashlib.sha256(path.read_bytes()).hexdigest()
        np.testing.assert_array_equal(pixels(stored), pixels(original))
    assert image_store() == Path(os.environ["GRAFT_CACHE_DIR"]) / "images"

    first = Path(data.items[0])
    written = first.stat().st_mtime_ns
    assert load_data(in_memory).items == data.items  # stored once, never rewritten
    assert first.stat().st_mtime_ns == written
    assert not list(image_store().rglob("*.tmp*"))

    # a datasets.Image column of encoded bytes: kept as they are, so the content (and the
    # feature cache's key) is the original file's
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=expected.classes)}
    )
    encoded = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": p.read_bytes(), "path": None} for p, _ in photos],
            "label": [expected.classes.index(y) for _, y in photos],
        },
        features=features,
    )
    from_bytes = load_data(encoded)
    assert from_bytes.classes == expected.classes  # ClassLabel values read as their names
    assert from_bytes.content_hash() == expected.content_hash()
    assert all(Path(item).suffix == ".jpg" for item in from_bytes.items)
    # ... and a datasets.Image column that names files reads those files
    named = datasets.Dataset.from_dict(
        {"image": [str(p) for p, _ in photos], "label": [y for _, y in photos]}
    ).cast_column("image", datasets.Image())
    same_data(load_data(named), expected)


def test_arrays_and_images_in_memory_are_stored_losslessly():
    array = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    stored = store_image(array)
    np.testing.assert_array_equal(np.asarray(Image.open(stored)), array)
    assert store_image(Image.fromarray(array)) == stored  # the same pixels, the same file
    gray = store_image(np.full((3, 3), 7, dtype=np.uint8))
    assert Image.open(gray).mode == "L" and np.asarray(Image.open(gray)).max() == 7


def test_unusable_image_values_are_skipped_and_named_by_row(tmp_path, photos, caplog):
    values = [Image.open(p) for p, _ in photos]
    values[1] = b"not an image"
    values[2] = np.zeros((8, 8), dtype=np.float32)
    values[4] = np.zeros((2, 3, 5, 7), dtype=np.uint8)
    whole = photos[5][0].read_bytes()
    values[5] = whole[: len(whole) // 2]  # a truncated JPEG
    frame = pd.DataFrame({"image": values, "label": [y for _, y in photos]})
    data = load_data(frame)
    assert len(data) == 5
    reasons = dict(data.skipped)
    assert set(reasons) == {f"DataFrame, row {n}" for n in (1, 2, 4, 5)}
    assert "not an image" in reasons["DataFrame, row 1"]
    assert "float32 pixels" in reasons["DataFrame, row 2"]
    assert "shape (2, 3, 5, 7)" in reasons["DataFrame, row 4"]
    assert "truncated" in reasons["DataFrame, row 5"]
    assert all(
        reason.startswith("unreadable image in column 'image'") for reason in reasons.values()
    )
    assert "DataFrame, row 4" in caplog.text


def test_cells_read_as_csv_cells_do(tmp_path):
    # integers with gaps (pandas makes them floats) read as integers; NaN is a missing label
    frame = pd.DataFrame({"text": ["a", "b", "c", "d", "e"], "label": [1, 0, None, 1, 0]})
    data = load_data(frame)
    assert frame["label"].dtype == float and data.classes == ["0", "1"] and len(data) == 4
    assert data.skipped == [("DataFrame, row 2", "missing label in column 'label'")]
    # a DataFrame whose index is not 0..n-1 names the index label too
    frame.index = ["v", "w", "x", "y", "z"]
    assert load_data(frame).skipped[0][0] == "DataFrame, row 2 (index 'x')"
    # a ClassLabel column reads as class names; -1 (the hub's "no label") as a missing one
    labelled = datasets.Dataset.from_dict(
        {"text": ["a", "b", "c", "d"], "label": [0, 1, -1, 1]},
        features=datasets.Features(
            {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
        ),
    )
    data = load_data(labelled)
    assert data.classes == ["neg", "pos"] and data.labels.tolist() == [0, 1, 1]
    assert data.skipped == [("datasets.Dataset, row 2", "missing label in column 'label'")]


def test_lists_of_labels_are_a_multilabel_column(tmp_path):
    lists = [["books", "positive"], ["music"], ["books"], [], ["music", "negative"]]
    records = [
        {"text": f"review {i}", "labels": ";".join(labels)} for i, labels in enumerate(lists)
    ]
    expected = load_data(write_csv(tmp_path / "t.csv", records), task="multilabel")
    frame = pd.DataFrame({"text": [r["text"] for r in records], "labels": lists})
    forms = forms_of(tmp_path, records, frame)
    for form in ("DataFrame", "datasets.Dataset", "parquet"):
        data = load_data(forms[form])  # task "auto": a column of lists is multilabel
        same_data(data, expected)
        assert data.task == "multilabel" and data.label_delimiter == ";"
        assert data.skipped[0][1] == "missing label in column 'labels'"  # the empty list
    piped = load_data(frame, label_delimiter="|")
    assert piped.label_delimiter == "|" and piped.classes == expected.classes
    with pytest.raises(DataError, match=r"DataFrame, row 1: the label 'a;b' in column 'labels'"):
        load_data(pd.DataFrame({"text": ["x", "y"], "labels": [["c"], ["a;b"]]}))


# The same errors -------------------------------------------------------------------------------


BAD_OPTIONS = {
    "unknown label column": dict(label_column="nope"),
    "unknown text column": dict(text_column="nope"),
    "both input columns": dict(text_column="text", image_column="text"),
}


@pytest.mark.parametrize("options", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_a_bad_column_is_refused_with_the_csv_message(text_forms, options):
    messages = {}
    for form, source in text_forms.items():
        with pytest.raises(DataError) as error:
            load_data(source, **options)
        name = str(source) if isinstance(source, Path) else form
        assert str(error.value).startswith(f"{name}: ")
        messages[form] = str(error.value).removeprefix(f"{name}: ")
    assert len(set(messages.values())) == 1, messages


def test_a_table_without_a_label_column_is_refused_with_the_csv_message(tmp_path):
    records = [{"text": "fine", "rating_given": "1"}, {"text": "bad", "rating_given": "0"}]
    messages = set()
    for form, source in forms_of(tmp_path, records).items():
        with pytest.raises(DataError) as error:
            load_data(source)
        name = str(source) if isinstance(source, Path) else form
        messages.add(str(error.value).replace(name, "<table>"))
    assert messages == {
        "<table>: no label column found among text, rating_given; name it with --label-column"
    }


def test_tables_that_cannot_be_read_say_so(tmp_path):
    (tmp_path / "broken.parquet").write_text("text,label\n")
    with pytest.raises(DataError, match=r"broken.parquet: not a readable Parquet file"):
        load_data(tmp_path / "broken.parquet")
    with pytest.raises(DataError, match=r"DataFrame: the table is empty \(no columns\)"):
        load_data(pd.DataFrame())
    twice = pd.DataFrame([["a", "b", "1"]], columns=["text", "text", "label"])
    with pytest.raises(DataError, match=r"DataFrame: column 'text' appears twice"):
        load_data(twice)


def test_parquet_without_pyarrow_names_the_pip_command(tmp_path, monkeypatch):
    pd.DataFrame({"text": ["a"], "label": ["b"]}).to_parquet(tmp_path / "t.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ConfigError) as error:
        load_data(tmp_path / "t.parquet")
    assert str(error.value) == (
        f"{tmp_path / 't.parquet'}: reading Parquet needs pyarrow: pip install 'graft[tables]'"
    )


def test_graft_imports_none_of_pandas_pyarrow_datasets():
    code = (
        "import sys, graft, graft.data, graft.inference; "
        "print(sorted({'pandas', 'pyarrow', 'datasets'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


# Splits, prediction inputs, several tasks --------------------------------------------------------


def test_a_dataset_dict_gives_its_splits(text_forms):
    frame = text_forms["DataFrame"]
    parts = {"train": frame.iloc[:40], "validation": frame.iloc[40:50], "test": frame.iloc[50:]}
    splits = load_splits(
        datasets.DatasetDict(
            {k: datasets.Dataset.from_pandas(v, preserve_index=False) for k, v in parts.items()}
        )
    )
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 10)
    assert splits.val.source == "datasets.Dataset 'validation'"
    assert splits.test.items == list(frame.text.iloc[50:])
    as_dict = load_splits({"train": parts["train"], "val": text_forms["parquet"]})
    assert len(as_dict.val) == 60 and as_dict.train.source == "DataFrame 'train'"
    assert read_one(parts["test"], {}, split="test").source == "DataFrame 'test'"  # test=
    with pytest.raises(DataError, match=r"the splits 'validation' have no 'train' split"):
        load_splits({"validation": frame})
    with pytest.raises(DataError, match=r"datasets.DatasetDict holds the splits 'train'"):
        load_data(datasets.DatasetDict({"train": text_forms["datasets.Dataset"]}))


def test_parquet_and_frames_are_prediction_inputs(text_forms, tmp_path, photos):
    texts = load_inputs([text_forms["csv"]], "text")
    assert len(texts) == 60
    for form in ("DataFrame", "datasets.Dataset", "parquet"):
        assert load_inputs([text_forms[form]], "text") == texts
    assert load_inputs([text_forms["DataFrame"]["text"]], "text") == texts  # a Series
    rows = [{"image": f"img/{p.name}", "label": y} for p, y in photos]
    images = forms_of(tmp_path, rows)
    expected = [str(p) for p, _ in photos]
    assert load_inputs([images["parquet"]], "image") == expected
    assert load_inputs([Image.open(photos[0][0])], "image")[0].startswith(str(image_store()))
    broken = pd.DataFrame({"image": [str(photos[0][0]), b"junk"]})
    with pytest.raises(DataError, match=r"DataFrame, row 1: unreadable image in column 'image'"):
        load_inputs([broken], "image")


def test_parquet_and_frames_hold_several_tasks(tmp_path):
    records = [
        {"text": f"text {i}", "sentiment": "pos" if i % 2 else "neg", "topic": t, "stars": str(s)}
        for i, (t, s) in enumerate(
            zip("abcabcabca", [1.5, 2, 3, 4, 5, 2, 3, 4.5, 1, 2], strict=True)
        )
    ]
    records[3]["topic"] = ""  # a row without one task's label still trains the others
    expected = load_multitask(
        write_csv(tmp_path / "t.csv", records),
        {"sentiment": "auto", "topic": "auto", "stars": "auto"},
    )
    frame = pd.DataFrame(records).astype({"stars": float})
    for form in ("DataFrame", "datasets.Dataset", "parquet"):
        data = load_multitask(
            forms_of(tmp_path, records, frame)[form], dict.fromkeys(expected.names, "auto")
        )
        assert data.items == expected.items and data.tasks == expected.tasks
        np.testing.assert_array_equal(data.labels, expected.labels)
    assert [t.kind for t in expected.tasks] == ["multiclass", "multiclass", "regression"]
    with pytest.raises(DataError, match=r"^DataFrame: no column 'nope' \(option --tasks\)"):
        load_multitask(frame, {"nope": "auto"})


# The same fitted predictions ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_fit_on_each_form_gives_the_same_predictions(tmp_path):
    records = sst2_records(100)
    train, held_out = records[:80], [r["text"] for r in records[80:]]
    forms = forms_of(tmp_path, train, pd.DataFrame(train).astype({"label": int}))
    chances = {}
    for form, source in forms.items():
        model = graft.fit(
            source, strategy="feature-extract", epochs=3, progress=False, seed=0, max_length=32
        )
        assert model.classes_ == ["0", "1"]
        chances[form] = model.predict_proba(held_out)
    for form in FORMS:
        np.testing.assert_array_equal(chances[form], chances["csv"])
    frame = pd.DataFrame({"text": held_out})
    np.testing.assert_array_equal(model.predict_proba(frame), chances["csv"])
    np.testing.assert_array_equal(
        model.predict_proba(datasets.Dataset.from_pandas(frame)), chances["csv"]
    )
    assert model.predict(frame) == model.predict(held_out)
