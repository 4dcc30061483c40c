"""Augmentation presets, mixup, and cached augmented views for feature extraction."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from PIL import Image

import graft
from graft.backbones import create_backbone
from graft.data.transforms import InputDataset, image_transform, mixup_for
from graft.errors import ConfigError
from tests.conftest import EXAMPLES


@pytest.fixture(scope="module")
def preprocessing():
    return create_backbone("efficientnet_lite0").preprocessing


def photo() -> Image.Image:
    return Image.open(next((EXAMPLES / "train" / "daisy").iterdir())).convert("RGB")


def test_presets_build_on_timm_transforms(preprocessing):
    strong = repr(image_transform(preprocessing, train=True, augment="strong"))
    assert "RandAugment" in strong and "RandomErasing" in strong
    light = repr(image_transform(preprocessing, train=True, augment="light"))
    assert "RandomResizedCrop" in light and "RandAugment" not in light
    none = image_transform(preprocessing, train=True, augment="none")
    assert torch.equal(none(photo()), none(photo()))  # no randomness at all
    assert torch.equal(none(photo()), image_transform(preprocessing, train=False)(photo()))


def test_the_eval_transform_is_built_once_per_preprocessing(preprocessing):
    first = image_transform(preprocessing, train=False)
    assert image_transform(preprocessing, train=True, augment="none") is first
    assert image_transform(dataclasses.replace(preprocessing), train=False) is first  # equal
    other = dataclasses.replace(preprocessing, input_size=(64, 64))
    assert image_transform(other, train=False) is not first
    assert image_transform(preprocessing, train=True) is not image_transform(preprocessing, True)


def test_augmented_views_are_fixed_per_item_and_view(preprocessing):
    items = [str(next((EXAMPLES / "train" / "roses").iterdir()))]
    first = InputDataset(items, None, preprocessing, augment="strong", view=1)[0][0]
    again = InputDataset(items, None, preprocessing, augment="strong", view=1)[0][0]
    other = InputDataset(items, None, preprocessing, augment="strong", view=2)[0][0]
    plain = InputDataset(items, None, preprocessing)[0][0]
    assert torch.equal(first, again)
    assert not torch.equal(first, other) and not torch.equal(first, plain)


def test_mixup_only_for_the_strong_preset():
    assert mixup_for("light", 5, 0.1) is None
    mixup = mixup_for("strong", 5, 0.1)
    images, soft = mixup(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    assert soft.shape == (4, 5) and torch.allclose(soft.sum(1), torch.ones(4))


@pytest.mark.slow
def test_feature_extract_with_cached_views(tiny_flowers, tmp_path):
    cache = str(tmp_path / "cache")
    options = dict(strategy="feature-extract", views=3, epochs=3, cache_dir=cache, progress=False)
    model = graft.fit(tiny_flowers, **options)
    # 40 training photos x 3 views and 20 validation photos, each through the backbone once
    assert model.summary_["feature_cache"]["misses"] == 40 * 3 + 20
    again = graft.fit(tiny_flowers, **options, lr=1e-3)
    assert again.summary_["feature_cache"]["misses"] == 0


@pytest.mark.slow
def test_strong_augmentation_with_mixup_fine_tunes(tiny_flowers):
    model = graft.fit(
        tiny_flowers, strategy="full", augment="strong", epochs=1, batch_size=8, progress=False
    )
    assert model.history_[0]["phase"] == "full" and model.history_[0]["train_loss"] > 0


@pytest.mark.parametrize(
    "option, message",
    [
        ({"augment": "heavy"}, "--augment must be one of"),
        ({"views": 3, "augment": "none"}, "--views above 1 needs"),
    ],
)
def test_bad_augmentation_options(option, message):
    with pytest.raises(ConfigError, match=message):
        graft.GraftClassifier(**option)


def test_strong_augmentation_never_posterizes_to_zero_bits():
    """RandAugment's increasing posterize at the top magnitude keeps 0 bits, which Pillow 12+
    refuses: the strong preset clips the magnitude so that every draw gives an image."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform

    from graft.data.transforms import RAND_AUGMENT

    augment = rand_augment_transform(RAND_AUGMENT, {"img_mean": (124, 116, 104)})
    posterize = [op for op in augment.ops if op.name == "PosterizeIncreasing"]
    assert posterize and posterize[0].magnitude_max == 9
    image = Image.new("RGB", (32, 32), (120, 80, 40))
    for _ in range(300):  # magnitude noise reaches the clip many times
        assert augment(image).size == (32, 32)
