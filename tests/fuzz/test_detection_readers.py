"""The detection readers fuzzed (COCO JSON, VOC XML, YOLO labels): wrong types, huge, negative
and NaN numbers, boxes outside the image, odd file names, random and truncated bytes, deep
JSON and XML entity expansion. Each reads, or raises DataError in one line naming the file."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from graft.data.annotations.coco import read_coco
from graft.errors import DataError
from graft.tasks.detection.voc import read_voc
from graft.tasks.detection.yolo import read_yolo
from tests.fuzz.common import FUZZ, JSONISH, NAMES, NUMBERS, SCALARS, reads_or_refuses


def _image(folder: Path, name: str = "a.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), "white").save(folder / name)


BOXES = st.one_of(st.lists(NUMBERS, min_size=0, max_size=6), JSONISH)
COCO_IMAGE = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.integers(-2, 3), SCALARS),
        "file_name": NAMES,
        "width": st.one_of(NUMBERS, SCALARS),
        "height": st.one_of(NUMBERS, SCALARS),
    },
)
COCO_ANNOTATION = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers(0, 5),
        "image_id": st.one_of(st.integers(-1, 3), SCALARS),
        "category_id": st.one_of(st.integers(-1, 3), SCALARS),
        "bbox": BOXES,
        "segmentation": st.one_of(BOXES, st.lists(BOXES, max_size=3), JSONISH),
        "iscrowd": st.one_of(st.integers(0, 1), SCALARS),
        "area": NUMBERS,
    },
)
COCO = st.fixed_dictionaries(
    {},
    optional={
        "images": st.one_of(st.lists(COCO_IMAGE, max_size=4), JSONISH),
        "annotations": st.one_of(st.lists(COCO_ANNOTATION, max_size=6), JSONISH),
        "categories": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {}, optional={"id": st.one_of(st.integers(-1, 3), SCALARS), "name": SCALARS}
                ),
                max_size=4,
            ),
            JSONISH,
        ),
    },
)
#: A valid file the generated ones are mixed with (so that the checks past parsing are reached).
VALID = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10]}],
    "categories": [{"id": 1, "name": "thing"}],
}


@FUZZ
@given(doc=COCO, mix=st.booleans())
def test_coco_json(doc, mix):
    if mix:  # the valid file with some of its parts replaced
        doc = {**VALID, **doc}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _image(root / "images")
        file = root / "instances.json"
        file.write_text(json.dumps(doc, allow_nan=True))
        reads_or_refuses(lambda: read_coco(file), file)


@FUZZ
@given(
    content=st.one_of(st.binary(max_size=300), st.just(json.dumps(VALID).encode())),
    cut=st.integers(0, 400),
)
def test_coco_random_and_truncated_bytes(content, cut):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "instances.json"
        _image(Path(folder) / "images")
        file.write_bytes(content[:cut])
        reads_or_refuses(lambda: read_coco(file), file)


def test_coco_deeply_nested_json_is_refused_naming_the_file(tmp_path):
    """Regression (found by the fuzzer): json.loads raised RecursionError past ~100k levels."""
    file = tmp_path / "deep.json"
    file.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DataError, match="deep.json"):
        read_coco(file)


def _voc_xml(values: dict) -> str:
    obj = "".join(
        f"<object><name>{values['name']}</name><bndbox>"
        + "".join(f"<{k}>{values[k]}</{k}>" for k in ("xmin", "ymin", "xmax", "ymax"))
        + "</bndbox></object>"
        for _ in range(values["objects"])
    )
    size = f"<size><width>{values['width']}</width><height>{values['height']}</height></size>"
    return (
        f"<annotation><filename>{values['filename']}</filename>"
        f"{size if values['sized'] else ''}{obj}</annotation>"
    )


XML_TEXT = st.one_of(NUMBERS.map(str), st.text(alphabet="0123456789.-eE naIf", max_size=8))
VOC = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["cat", "", "dog", "&amp;"]),
        "filename": st.sampled_from(["a.jpg", "../a.jpg", "/etc/hosts", "missing.jpg", ""]),
        "objects": st.integers(0, 3),
        "sized": st.booleans(),
        **{k: XML_TEXT for k in ("xmin", "ymin", "xmax", "ymax", "width", "height")},
    }
)


def _voc_root(folder: Path, xml: bytes) -> Path:
    _image(folder / "JPEGImages")
    (folder / "Annotations").mkdir()
    (folder / "Annotations" / "a.xml").write_bytes(xml)
    return folder


@FUZZ
@given(values=VOC)
def test_voc_xml(values):
    with tempfile.TemporaryDirectory() as folder:
        root = _voc_root(Path(folder), _voc_xml(values).encode())
        reads_or_refuses(lambda: read_voc(root), root)


@FUZZ
@given(content=st.binary(max_size=300), cut=st.integers(0, 300))
def test_voc_random_and_truncated_bytes(content, cut):
    valid = _voc_xml(dict(name="cat", filename="a.jpg", objects=1, sized=True, xmin=1, ymin=1,
                          xmax=9, ymax=9, width=32, height=24)).encode()  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        root = _voc_root(Path(folder), (valid[:cut] + content) if cut % 2 else content)
        reads_or_refuses(lambda: read_voc(root), root)


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]><annotation><filename>&lol9;</filename></annotation>"
)


@pytest.mark.parametrize(
    "xml",
    [
        BILLION_LAUGHS,
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<annotation><filename>&x;</filename></annotation>",
    ],
    ids=["billion-laughs", "external-entity"],
)
def test_voc_entity_expansion_is_refused_quickly(tmp_path, xml):
    root = _voc_root(tmp_path, xml.encode())
    began = time.monotonic()
    with pytest.raises(DataError, match="a.xml"):
        read_voc(root)
    assert time.monotonic() - began < 2.0


LABEL_LINE = st.one_of(
    st.lists(st.one_of(NUMBERS.map(str), st.sampled_from(["0", "1", "0.5", "x", "-1", "nan"])),
             min_size=0, max_size=9).map(" ".join),
    st.text(max_size=30),
)  # fmt: skip


@FUZZ
@given(lines=st.lists(LABEL_LINE, max_size=5), names=st.lists(st.text(max_size=6), max_size=3))
def test_yolo_labels(lines, names):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _image(root / "images")
        (root / "labels").mkdir()
        (root / "labels" / "a.txt").write_text("\n".join(lines))
        (root / "classes.txt").write_text("\n".join(names or ["thing"]))
        reads_or_refuses(lambda: read_yolo(root), root)


@FUZZ
@given(content=st.binary(max_size=200))
def test_yolo_random_bytes(content):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _image(root / "images")
        (root / "labels").mkdir()
        (root / "labels" / "a.txt").write_bytes(content)
        (root / "classes.txt").write_bytes(content[:20] or b"thing")
        reads_or_refuses(lambda: read_yolo(root), root)


@pytest.mark.parametrize("width", ["inf", "nan", "1e300"])
def test_voc_size_that_is_not_a_number_of_pixels_is_refused(tmp_path, width):
    """Regression (found by the fuzzer): int(float("inf")) raised OverflowError."""
    xml = _voc_xml(dict(name="cat", filename="a.jpg", objects=1, sized=True, xmin=1, ymin=1,
                        xmax=9, ymax=9, width=width, height=24))  # fmt: skip
    with pytest.raises(DataError, match="a.xml: <size> must be"):
        read_voc(_voc_root(tmp_path, xml.encode()))
