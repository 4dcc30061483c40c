"""Data that is nearly one kind's format is answered with the file and line that break it; data
of no kind with every format graft reads (``read_task_data`` with ``--task auto``)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from graft.config import FitConfig
from graft.data.sources import UnknownFormatError, load_data
from graft.errors import DataError
from graft.tasks import read_task_data
from graft.tasks.tagging.detect import holds_tagged_data, near_miss

CONLL = "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n"
NO_TAG = "'Bad' has no tag; a CoNLL line is 'WORD ... TAG' (or blank between sentences)"


def read(data, task: str = "auto"):
    return read_task_data(FitConfig(task=task), str(data), None, None, {})


@pytest.mark.parametrize("name", ["x.conll", "x.txt"])
def test_a_conll_file_with_an_untagged_line_names_the_line(tmp_path, name):
    path = tmp_path / name
    path.write_text(CONLL + "Bad\n")
    with pytest.raises(DataError) as caught:
        read(path)
    assert str(caught.value) == f"{path}, line 5: {NO_TAG}"


def test_a_folder_whose_train_file_breaks_names_that_file_and_line(tmp_path):
    (tmp_path / "train.txt").write_text(CONLL + "\nthe O\nBad\n")
    with pytest.raises(DataError) as caught:
        read(tmp_path)
    assert str(caught.value) == f"{tmp_path / 'train.txt'}, line 7: {NO_TAG}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "EU NNP B-ORG\nrejects VBZ O\nGerman JJ B-MISC\ncall B-X\n",
            "line 4: 'call B-X' has 2 columns where the other lines have 3",
        ),
        (
            "John U-PER\nsaid O\nMary B-PER\nleft O\n",
            "line 1: 'John U-PER' ends in 'U-PER', not a tag",
        ),
    ],
)
def test_other_breaks_of_a_column_file_say_what_is_wrong(tmp_path, text, expected):
    path = tmp_path / "x.conll"
    path.write_text(text)
    assert not holds_tagged_data(path)
    reason = near_miss(path)
    assert reason.startswith(f"{path}, {expected}")
    assert reason.endswith("; a CoNLL line is 'WORD ... TAG' (or blank between sentences)")


def test_a_jsonl_record_without_tags_is_named_by_its_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"tokens": ["EU", "rejects"]}\n{"tokens": ["a"], "tags": ["O"]}\n')
    with pytest.raises(DataError, match=r"x\.jsonl, line 1: expected 'tokens' with 'tags'"):
        read(path)


def test_valid_conll_still_reads_as_tagging(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text(CONLL + "\nBrussels B-LOC\nsaid O\n")
    assert near_miss(path) is None
    kind, splits = read(path)
    assert kind.kind == "tagging"
    assert splits.train.tokens[1] == ["Brussels", "said"]


def test_prose_and_tables_are_no_near_miss(tmp_path):
    prose = tmp_path / "notes.txt"
    prose.write_text("The quick brown fox\njumps over the lazy dog\nO\n")
    table = tmp_path / "t.jsonl"
    table.write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "labels": ["a"]}\n')
    assert near_miss(prose) is None
    assert near_miss(table) is None


def test_data_of_no_kind_lists_every_format(tmp_path):
    path = tmp_path / "x.bin"
    path.write_text("junk\n")
    with pytest.raises(DataError) as caught:
        read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not data of any kind graft reads: class folders")
    assert "\n" not in message
    for part in (
        "images, texts or audio",
        ".csv, .tsv, .jsonl, .parquet",
        "CoNLL",
        "(tagging)",
        "COCO JSON, a VOC folder or a YOLO folder (detection)",
        "a folder of images beside a folder of masks (segmentation)",
    ):
        assert part in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no class folders, nor data of any kind .*COCO"):
        read(tmp_path / "empty")


def test_load_data_alone_keeps_its_own_message(tmp_path):
    path = tmp_path / "x.bin"
    path.write_text("junk\n")
    with pytest.raises(UnknownFormatError, match=r"nor a table \(\.csv, \.tsv") as caught:
        load_data(path)
    assert caught.value.path == path.resolve()


def _coco(tmp_path, annotations):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "images" / "0.png")
    doc = {
        "images": [{"id": 0, "file_name": "0.png", "width": 16, "height": 16}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "cat"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def test_a_broken_coco_annotation_names_the_record(tmp_path):
    path = _coco(tmp_path, [{"id": 7, "image_id": 0, "category_id": 1}, ["oops"]])
    with pytest.raises(DataError, match=r"instances\.json: annotations\[1\] is not an object"):
        read(path)


def test_a_coco_annotation_with_three_numbers_names_it(tmp_path):
    path = _coco(tmp_path, [{"id": 7, "image_id": 0, "category_id": 1, "bbox": [1, 2, 3]}])
    with pytest.raises(DataError, match=r"annotation 7 \(image 0\.png\): 'bbox' must be 4"):
        read(path)


def test_a_json_list_of_boxes_is_nearly_coco(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps([{"file_name": "0.png", "bbox": [1, 2, 3, 4]}]))
    with pytest.raises(DataError) as caught:
        read(path)
    assert str(caught.value).startswith(f"{path}, line 1: a JSON list, not an object; a COCO")


def test_a_yolo_label_of_four_numbers_names_its_line(tmp_path):
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "images" / "0.png")
    (tmp_path / "labels" / "0.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    (tmp_path / "classes.txt").write_text("cat\n")
    with pytest.raises(DataError, match=r"0\.txt, line 2: expected 'class cx cy w h'"):
        read(tmp_path)


def test_masks_that_are_no_images_are_named(tmp_path):
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "images" / "a.png")
    (tmp_path / "masks" / "a.npy").write_bytes(b"\0")
    with pytest.raises(DataError, match=r"masks: no mask image for the images of images/"):
        read(tmp_path)
