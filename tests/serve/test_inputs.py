"""An uploaded image is decoded once, in memory (graft.data.images.decode_rgb), exactly as the
model decodes a file, and the inputs the service prepares as they arrive
(graft.inference.Predictor.prepare) get the answers of the files themselves."""

from __future__ import annotations

import numpy as np
import pytest

from graft.data.images import UnreadableImage, decode_rgb, open_rgb


def test_an_upload_decodes_as_its_file_and_a_bad_one_is_named(photos, tmp_path):
    for photo in photos[:3]:
        decoded = decode_rgb(photo.read_bytes(), photo.name)
        assert decoded.mode == "RGB"
        assert np.array_equal(np.asarray(decoded), np.asarray(open_rgb(photo)))
        assert open_rgb(decoded) is decoded  # decoded already: taken as it is
    with pytest.raises(UnreadableImage, match="the file is empty"):
        decode_rgb(b"", "empty.jpg")
    with pytest.raises(UnreadableImage, match="cannot identify image file 'notes.jpg'"):
        decode_rgb(b"not an image at all", "notes.jpg")
    half = photos[0].read_bytes()[: len(photos[0].read_bytes()) // 2]
    with pytest.raises(UnreadableImage, match="truncated"):
        decode_rgb(half, "half.jpg")


def test_prepared_inputs_get_the_answers_of_the_files(flowers_run, photos):
    model = flowers_run[0]
    paths = [str(photo) for photo in photos[:4]]
    images = [decode_rgb(photo.read_bytes(), photo.name) for photo in photos[:4]]
    expected = model.served_answers(paths, top_k=5)
    assert model.served_answers(images, top_k=5) == expected
    assert model.served_answers(model.prepare(images), top_k=5) == expected
