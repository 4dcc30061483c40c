"""Loading folders and tables, the stratified split, image modes, and every bad-input error."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from graft.data import load_data, load_inputs, load_splits, stratified_split
from graft.data.images import open_rgb
from graft.errors import DataError
from tests.conftest import EXAMPLES


def make_images(folder, count, color=(200, 30, 30), size=(32, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", size, color).save(folder / f"{i}.png")


def test_class_folders_and_train_val_layout():
    splits = load_splits(EXAMPLES)
    assert splits.train.classes == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert len(splits.train) == 250 and len(splits.val) == 100 and splits.test is None
    assert splits.train.modality == "image"
    assert splits.train.class_counts() == {name: 50 for name in splits.train.classes}


def test_hidden_files_are_ignored(tmp_path):
    make_images(tmp_path / "a", 2)
    make_images(tmp_path / "b", 2)
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"\0\1")
    (tmp_path / ".hidden").mkdir()
    data = load_data(tmp_path)
    assert data.classes == ["a", "b"] and len(data) == 4 and not data.skipped


def test_unreadable_images_are_skipped_named_and_counted(tmp_path, caplog):
    make_images(tmp_path / "a", 3)
    make_images(tmp_path / "b", 3)
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "b" / "notes.jpg").write_text("not an image")
    good = tmp_path / "a" / "0.png"
    (tmp_path / "a" / "truncated.png").write_bytes(good.read_bytes()[:60])
    with caplog.at_level(logging.WARNING, logger="graft"):
        data = load_data(tmp_path)
    assert len(data) == 6
    assert {p.rsplit("/", 1)[1] for p, _ in data.skipped} == {
        "empty.jpg",
        "notes.jpg",
        "truncated.png",
    }
    assert "notes.jpg" in caplog.text and "empty.jpg" in caplog.text


def test_image_modes_become_rgb_and_exif_rotation_is_applied(tmp_path):
    modes = {
        "grey.png": Image.new("L", (8, 4), 128),
        "rgba.png": Image.new("RGBA", (8, 4), (0, 0, 0, 0)),
        "palette.png": Image.new("P", (8, 4), 3),
        "cmyk.jpg": Image.new("CMYK", (8, 4), (0, 255, 255, 0)),
        "deep.png": Image.new("I;16", (8, 4), 40000),
    }
    for name, image in modes.items():
        image.save(tmp_path / name)
        converted = open_rgb(tmp_path / name)
        assert converted.mode == "RGB" and converted.size == (8, 4), name
    assert open_rgb(tmp_path / "rgba.png").getpixel((0, 0)) == (255, 255, 255)
    clear = Image.new("P", (8, 4), 0)  # palette index 0 (red) marked transparent
    clear.putpalette([255, 0, 0] + [0, 255, 0] * 255)
    clear.save(tmp_path / "clear.png", transparency=0)
    assert open_rgb(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)  # on white
    assert open_rgb(tmp_path / "cmyk.jpg").getpixel((0, 0))[0] > 200  # red stays red
    rotated = Image.new("RGB", (8, 4), (10, 200, 10))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    assert open_rgb(tmp_path / "rotated.jpg").size == (4, 8)


def test_csv_text_table_with_detected_columns(tmp_path):
    table = tmp_path / "reviews.csv"
    table.write_text(
        "id,review,sentiment\n1,great phone,pos\n2,broke in a day,neg\n3,love it,pos\n"
    )
    data = load_data(table)
    assert data.modality == "text" and data.items == ["great phone", "broke in a day", "love it"]
    assert data.classes == ["neg", "pos"] and data.labels.tolist() == [1, 0, 1]


def test_numeric_labels_sort_numerically(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("text\tlabel\n" + "".join(f"t{i}\t{v}\n" for i, v in enumerate([10, 2, 1, 2])))
    assert load_data(table).classes == ["1", "2", "10"]


def test_image_table_with_relative_paths_and_jsonl(tmp_path):
    make_images(tmp_path / "img", 4)
    rows = [{"path": f"img/{i}.png", "label": "ab"[i % 2]} for i in range(4)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = load_data(tmp_path / "t.jsonl")
    assert data.modality == "image" and len(data) == 4
    assert data.items[0] == str((tmp_path / "img" / "0.png").resolve())


def test_table_rows_with_missing_label_or_missing_file_are_skipped(tmp_path):
    make_images(tmp_path / "img", 3)
    (tmp_path / "t.csv").write_text(
        "image,label\nimg/0.png,a\nimg/1.png,b\nimg/2.png,\nimg/nope.png,a\nimg/0.png,b\n"
    )
    data = load_data(tmp_path / "t.csv")
    assert len(data) == 3
    reasons = " ".join(f"{where}: {why}" for where, why in data.skipped)
    assert "row 4" in reasons and "missing label" in reasons
    assert "row 5" in reasons and "nope.png" in reasons


@pytest.mark.parametrize(
    "content, option, message",
    [
        ("text,label\nhi,a\n", {"label_column": "tag"}, "no column 'tag'"),
        ("words,tag\nhi,a\nyo,b\n", {}, "no label column"),
        ("a,b,label\nx,y,1\nz,w,0\n", {}, "cannot tell which column"),
        ("text,label\nhi,a\nyo,b,extra\n", {}, "row 3"),
    ],
)
def test_table_errors_name_the_file_and_column(tmp_path, content, option, message):
    table = tmp_path / "data.csv"
    table.write_text(content)
    with pytest.raises(DataError, match=message) as error:
        load_data(table, **option)
    assert "data.csv" in str(error.value)


def test_non_utf8_table_names_the_line(tmp_path):
    table = tmp_path / "latin.csv"
    table.write_bytes(b"text,label\nfine,a\ncaf\xe9,b\n")
    with pytest.raises(DataError, match=r"latin\.csv, line 3"):
        load_data(table)


def test_empty_folder_single_class_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="no class folders"):
        load_data(tmp_path)
    make_images(tmp_path / "only", 3)
    with pytest.raises(DataError, match="at least 2 classes.*'only'"):
        load_data(tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        load_data(tmp_path / "missing")


def test_empty_class_folder_is_left_out(tmp_path):
    make_images(tmp_path / "a", 2)
    make_images(tmp_path / "b", 2)
    (tmp_path / "c").mkdir()
    assert load_data(tmp_path).classes == ["a", "b"]


def test_stratified_split_is_seeded_and_keeps_class_shares():
    data = load_data(EXAMPLES / "train")
    train, val = stratified_split(data, 0.2, seed=3)
    again_train, again_val = stratified_split(data, 0.2, seed=3)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)
    assert not set(train) & set(val) and len(train) + len(val) == len(data)
    assert np.bincount(data.labels[val]).tolist() == [10] * 5
    assert not np.array_equal(stratified_split(data, 0.2, seed=4)[1], val)


def test_split_refuses_a_class_with_one_example(tmp_path):
    make_images(tmp_path / "a", 5)
    make_images(tmp_path / "b", 1)
    with pytest.raises(DataError, match="class 'b' has 1 example.*--val"):
        stratified_split(load_data(tmp_path), 0.2, seed=0)


def test_text_class_folders(tmp_path):
    for name, texts in {"sport": ["goal!", "a win"], "tech": ["new chip", "an app"]}.items():
        (tmp_path / name).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / name / f"{i}.txt").write_text(text)
    data = load_data(tmp_path)
    assert data.modality == "text" and sorted(data.items) == [
        "a win",
        "an app",
        "goal!",
        "new chip",
    ]


def test_relabel_refuses_unknown_labels(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\na,x\nb,y\nc,z\n")
    with pytest.raises(DataError, match="'z' were never seen"):
        load_data(tmp_path / "t.csv").relabel(["x", "y"])


def test_prediction_inputs(tmp_path):
    shutil.copytree(EXAMPLES / "val" / "roses", tmp_path / "roses")
    assert len(load_inputs([str(tmp_path / "roses")], "image")) == 20
    assert load_inputs(["a fine film", "awful"], "text") == ["a fine film", "awful"]
    (tmp_path / "t.csv").write_text("text\nhello\nworld\n")
    assert load_inputs([str(tmp_path / "t.csv")], "text") == ["hello", "world"]
    with pytest.raises(DataError, match="no such image"):
        load_inputs([str(tmp_path / "nope.jpg")], "image")
    long_text, with_nul = "so good " * 200, "odd\x00text"  # no file system path can hold these
    assert load_inputs([long_text, with_nul], "text") == [long_text, with_nul]
    with pytest.raises(DataError, match="not an image file"):
        load_inputs([long_text], "image")


def test_table_paths_outside_its_folder_are_skipped_and_named(tmp_path):
    make_images(tmp_path / "data" / "img", 3)
    make_images(tmp_path / "elsewhere", 1)
    table = tmp_path / "data" / "t.csv"
    table.write_text(
        "image,label\nimg/0.png,a\n../elsewhere/0.png,b\nimg/1.png,b\n"
        f"{tmp_path / 'elsewhere' / '0.png'},a\nimg/2.png,a\n"
    )
    data = load_data(table)
    assert data.modality == "image" and len(data) == 3
    reasons = dict(data.skipped)
    assert "outside" in reasons[f"{table}, row 3"] and "outside" in reasons[f"{table}, row 5"]


def test_a_symlink_back_up_the_tree_is_not_followed(tmp_path, caplog):
    make_images(tmp_path / "a", 2)
    make_images(tmp_path / "b", 3)
    (tmp_path / "a" / "up").symlink_to(tmp_path, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="graft"):
        data = load_data(tmp_path)
    assert data.class_counts() == {"a": 2, "b": 3}  # b's photos did not leak into a
    assert "symlink back up" in caplog.text


def test_duplicates_are_counted_with_conflicting_labels(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\nsame,a\nsame,a\nclash,a\nclash,b\nlone,b\n")
    found = load_data(tmp_path / "t.csv").duplicates()
    assert found["extra_copies"] == 2 and found["conflicting_labels"] == 1
    assert ["clash", "clash"] in found["examples"]


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    from graft.data import images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10_000)
    Image.new("L", (200, 100)).save(tmp_path / "bomb.png")
    with pytest.raises(images.UnreadableImage, match="200x100 pixels is over the limit of 10,000"):
        open_rgb(tmp_path / "bomb.png")


def test_nested_folders_below_a_class_are_read(tmp_path):
    make_images(tmp_path / "a" / "2019" / "march", 2)
    make_images(tmp_path / "a" / "2020", 1)
    make_images(tmp_path / "b" / "x" / "y" / "z", 3)
    assert load_data(tmp_path).class_counts() == {"a": 3, "b": 3}


def test_rows_with_an_empty_text_are_skipped_and_named(tmp_path):
    (tmp_path / "t.csv").write_text('text,label\n"",a\nhello,a\nworld,b\n   ,b\nfoo,b\n')
    data = load_data(tmp_path / "t.csv")
    assert data.items == ["hello", "world", "foo"]
    assert [where.rsplit(" ", 1)[1] for where, _ in data.skipped] == ["2", "5"]
    assert all("empty text in column 'text'" in why for _, why in data.skipped)
