"""The feature cache: a second fit on the same data runs no backbone forward pass."""

from __future__ import annotations

import shutil

import pytest
import torch

import graft
from graft import features
from graft.backbones import create_backbone
from graft.data import load_data
from graft.features import FeatureCache


def test_second_fit_does_no_backbone_forward_pass(tiny_flowers, tmp_path, monkeypatch):
    cache_dir = str(tmp_path / "cache")
    first = graft.fit(tiny_flowers, strategy="feature-extract", cache_dir=cache_dir, progress=False)
    assert first.summary_["feature_cache"]["misses"] == 60

    def forbidden(*args, **kwargs):
        raise AssertionError("the backbone ran although every feature was cached")

    monkeypatch.setattr(features, "extract_features", forbidden)
    second = graft.fit(
        tiny_flowers, strategy="feature-extract", cache_dir=cache_dir, lr=3e-3, progress=False
    )
    assert second.summary_["feature_cache"]["misses"] == 0
    assert second.summary_["feature_cache"]["hits"] > 0


def test_cache_is_keyed_by_content_not_by_path(tiny_flowers, tmp_path):
    backbone = create_backbone("efficientnet_lite0")
    cache = FeatureCache(tmp_path / "cache")
    data = load_data(tiny_flowers / "val")
    original = cache.features(backbone, data)
    moved = tmp_path / "moved"
    shutil.copytree(tiny_flowers / "val", moved)
    again = cache.features(backbone, load_data(moved))
    assert cache.stats.misses == len(data) and cache.stats.hits == len(data)
    assert torch.equal(original, again)
    direct = features.extract_features(backbone, data)
    assert torch.allclose(direct, original, atol=1e-5)


def test_cache_misses_when_the_weights_change(tiny_flowers, tmp_path):
    backbone = create_backbone("efficientnet_lite0")
    cache = FeatureCache(tmp_path / "cache")
    data = load_data(tiny_flowers / "val")
    cache.features(backbone, data)
    with torch.no_grad():
        backbone.model.conv_head.weight.mul_(1.01)
    cache.features(backbone, data)
    assert cache.stats.misses == 2 * len(data)


def test_unreadable_cache_shard_is_recomputed(tiny_flowers, tmp_path, caplog):
    backbone = create_backbone("efficientnet_lite0")
    cache = FeatureCache(tmp_path / "cache")
    data = load_data(tiny_flowers / "val")
    expected = cache.features(backbone, data)
    for shard in (tmp_path / "cache").rglob("shard-*.safetensors"):
        shard.write_bytes(b"garbage")
    fresh = FeatureCache(tmp_path / "cache")
    assert torch.allclose(fresh.features(backbone, data), expected, atol=1e-5)
    assert fresh.stats.misses == len(data)
    assert "dropping corrupt" in caplog.text


def test_a_silently_flipped_feature_is_caught_by_the_checksum(tiny_flowers, tmp_path, caplog):
    backbone = create_backbone("efficientnet_lite0")
    cache = FeatureCache(tmp_path / "cache")
    data = load_data(tiny_flowers / "val")
    expected = cache.features(backbone, data)
    (shard,) = (tmp_path / "cache").rglob("shard-*.safetensors")
    raw = bytearray(shard.read_bytes())
    raw[-5] ^= 0x40  # one bit of the last feature: the file still loads
    shard.write_bytes(bytes(raw))
    fresh = FeatureCache(tmp_path / "cache")
    assert torch.allclose(fresh.features(backbone, data), expected, atol=1e-5)
    assert fresh.stats.misses == len(data)  # recomputed, not used
    assert "checksum does not match" in caplog.text
    assert len(list((tmp_path / "cache").rglob("shard-*.safetensors"))) == 1  # bad one gone


@pytest.mark.parametrize("strategy", ["feature-extract", "fine-tune"])
def test_same_seed_gives_the_same_model(tiny_flowers, strategy):
    runs = [
        graft.fit(tiny_flowers, strategy=strategy, epochs=1, head_epochs=3, progress=False)
        for _ in range(2)
    ]
    inputs = [str(tiny_flowers / "val")]
    assert (runs[0].predict_proba(inputs) == runs[1].predict_proba(inputs)).all()


def _features_in_a_fresh_process(cache_root: str, folder: str, rounds: int) -> list[torch.Tensor]:
    backbone = create_backbone("efficientnet_lite0")
    data = load_data(folder)
    return [FeatureCache(cache_root).features(backbone, data) for _ in range(rounds)]


@pytest.mark.slow
def test_processes_sharing_one_cache_read_and_write_it_safely(tiny_flowers, tmp_path, caplog):
    import concurrent.futures
    import multiprocessing

    cache_root, folder = str(tmp_path / "cache"), str(tiny_flowers / "val")
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as pool:
        futures = [
            pool.submit(_features_in_a_fresh_process, cache_root, folder, 3) for _ in range(3)
        ]
        results = [tensor for future in futures for tensor in future.result()]
    expected = features.extract_features(create_backbone("efficientnet_lite0"), load_data(folder))
    for result in results:
        assert torch.allclose(result, expected, atol=1e-5)
    after = FeatureCache(cache_root)
    assert torch.allclose(
        after.features(create_backbone("efficientnet_lite0"), load_data(folder)),
        expected,
        atol=1e-5,
    )
    assert after.stats.misses == 0
    assert "dropping corrupt" not in caplog.text
    assert not list((tmp_path / "cache").rglob("*.tmp"))
