"""Detection and instance segmentation, the quick checks: the kind claims its data by content,
options and data it cannot take are refused in one line, the multi-scale backbone answers the
protocol, every detector trains a step and answers in graft's labels, the batch order depends
on (seed, epoch) only, COCO metrics on Penn-Fudan's own boxes, answers and RLE masks, and
torchvision's complete detectors load from a local file (and say how when offline)."""

from __future__ import annotations

import copy
import json
import urllib.error

import numpy as np
import pytest
import torch

import graft
from graft.backbones.features_only import features_only
from graft.config import FitConfig
from graft.errors import ConfigError, DataError, ModelUnavailableError
from graft.tasks import claiming_kind, task_class
from graft.tasks.detection import read_detection
from graft.tasks.detection.answers import answer_list, compact
from graft.tasks.detection.batches import DetectionDataset, SizeBucketSampler, collate_detection
from graft.tasks.detection.detectors import DetectorSettings, build_head
from graft.tasks.detection.metrics import detection_metrics
from graft.tasks.detection.task import DetectionTask, InstanceSegmentationTask, Sizes
from tests.conftest import SHARED

PENNFUDAN = SHARED / "pennfudan"


@pytest.fixture(scope="module")
def val():
    if not (PENNFUDAN / "annotations_val.json").is_file():
        pytest.skip(f"shared dataset {PENNFUDAN} is not available")
    return read_detection(PENNFUDAN / "annotations_val.json")


@pytest.fixture(scope="module")
def lite0():
    return features_only("efficientnet_lite0", levels=(-3, -2, -1))


def test_the_kinds_are_registered_and_claim_detection_data_by_content(val, tmp_path):
    assert task_class("detection") is DetectionTask
    assert task_class("instance-segmentation") is InstanceSegmentationTask
    assert DetectionTask.claims(PENNFUDAN) and DetectionTask.claims(val)
    assert DetectionTask.claims(PENNFUDAN / "annotations_train.json")
    assert claiming_kind(PENNFUDAN) is DetectionTask
    assert not InstanceSegmentationTask.claims(PENNFUDAN)  # asked for by name
    (tmp_path / "table.json").write_text(json.dumps([{"text": "a", "label": "b"}]))
    for other in (SHARED / "flowers5_128px", tmp_path / "table.json", tmp_path / "none"):
        assert not DetectionTask.claims(other)
    splits = DetectionTask.read_splits(PENNFUDAN, None, None, {}, FitConfig())
    assert (len(splits.train), len(splits.val), splits.test) == (120, 50, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "auto"}, "--strategy auto measures pooled features"),
        ({"detector": "yolo"}, "--detector must be one of fasterrcnn, retinanet, fcos"),
        ({"views": 2, "strategy": "feature-extract"}, "--views caches pooled features"),
        ({"class_weights": "auto"}, "--class-weights auto weighs classes"),
        ({"image_size": 32}, "--image-size must be at least 64"),
    ],
)
def test_options_a_detector_cannot_take_are_one_line_errors(val, options, message):
    with pytest.raises(ConfigError, match=message):
        graft.fit(val.subset([0, 1, 2]), val.subset([3]), task="detection", **options)


def test_instance_segmentation_refuses_boxes_without_masks_and_dense_heads(val, tmp_path):
    boxes_only = copy.deepcopy(val.subset([0, 1, 2]))  # the fixture's targets stay whole
    for target in boxes_only.targets:
        target.masks = None
    with pytest.raises(DataError, match="needs a mask for every object"):
        graft.fit(boxes_only, val.subset([3]), task="instance-segmentation")
    with pytest.raises(ConfigError, match="instance segmentation trains Mask R-CNN"):
        graft.fit(val.subset([0]), task="instance-segmentation", detector="retinanet")
    with pytest.raises(ConfigError, match="name table columns"):
        graft.fit(PENNFUDAN, task="detection", label_column="label")


def test_detection_defaults_fill_only_the_options_not_given():
    task = DetectionTask(["person"])
    config = task.defaults(FitConfig())
    assert (config.batch_size, config.lr, config.head_epochs, config.epochs) == (4, 1e-3, 4, 8)
    given = task.defaults(FitConfig(batch_size=32, lr=0.01, epochs=3))  # 32: given, kept
    assert (given.batch_size, given.lr, given.head_epochs, given.epochs) == (32, 0.01, 4, 3)
    assert config.label_smoothing == 0.1  # graft's fallback where detection has none
    assert Sizes.around(512) == Sizes(512, 853, (416, 448, 480, 512, 544, 576, 608))


def test_features_only_backbone_answers_the_protocol(lite0):
    assert lite0.spec == "efficientnet_lite0"
    assert (lite0.channels, lite0.reductions) == ([40, 112, 320], [8, 16, 32])
    maps = lite0(torch.zeros(1, 3, 96, 160))
    assert [tuple(m.shape) for m in maps.values()] == [
        (1, 40, 12, 20),
        (1, 112, 6, 10),
        (1, 320, 3, 5),
    ]
    groups = lite0.parameter_groups()
    assert len(groups) == 8  # the stem and 7 stages, from input to output
    assert groups[0][0] is lite0.model.conv_stem.weight
    flat = [id(p) for g in groups for p in g]
    assert sorted(flat) == sorted(id(p) for p in lite0.parameters())  # conv_head was pruned
    assert features_only("scratch:efficientnet_lite0").fingerprint() != lite0.fingerprint()
    with pytest.raises(ConfigError, match="gives no multi-scale feature maps"):
        features_only("minilm")


def _images_and_targets(data, size=160):
    from torchvision.transforms.v2 import functional as F

    dataset = DetectionDataset(data.images, data.targets, None, masks=True)
    images, targets = collate_detection([dataset[i] for i in range(len(data))])
    scaled_images, scaled_targets = [], []
    for image, target in zip(images, targets, strict=True):
        scale = size / min(image.shape[-2:])
        shape = [round(image.shape[-2] * scale), round(image.shape[-1] * scale)]
        scaled_images.append(F.resize(image, shape, antialias=True))
        masks = F.resize(target["masks"], shape, interpolation=0)
        scaled_targets.append({**target, "boxes": target["boxes"] * scale, "masks": masks})
    return scaled_images, scaled_targets


@pytest.mark.parametrize(
    ("detector", "masks"),
    [("fasterrcnn", False), ("retinanet", False), ("fcos", False), ("fasterrcnn", True)],
)
def test_every_detector_trains_a_step_and_answers_in_graft_labels(lite0, val, detector, masks):
    torch.manual_seed(0)
    settings = DetectorSettings(detector, 1, masks, 160, 267, (0.5,) * 3, (0.5,) * 3)
    head = build_head(lite0, settings)
    images, targets = _images_and_targets(val.subset([0, 1]))
    head.train()
    losses = head(images, targets)
    expected = {
        "fasterrcnn": "loss_classifier",
        "retinanet": "classification",
        "fcos": "bbox_ctrness",
    }
    assert expected[detector] in losses and all(torch.isfinite(v) for v in losses.values())
    assert ("loss_mask" in losses) == masks
    sum(losses.values()).backward()
    assert not {id(p) for p in head.parameters()} & {id(p) for p in lite0.parameters()}
    assert lite0.model.conv_stem.weight.grad is not None  # trained through the head
    lite0.zero_grad(set_to_none=True)
    assert not any(k.startswith("detector.backbone.body") for k in head.state_dict())
    head.eval()
    with torch.inference_mode():
        found = head(images)
    assert len(found) == 2 and all(set(f["labels"].tolist()) <= {0} for f in found)
    assert ("masks" in found[0]) == masks


def test_size_buckets_depend_on_seed_and_epoch_only(val):
    sampler = SizeBucketSampler(val.sizes(), 4, seed=3)
    first = list(sampler)
    again = SizeBucketSampler(val.sizes(), 4, seed=3)
    assert list(again) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and len(second) == len(first) == len(sampler)
    for batches in (first, second):
        assert sorted(i for b in batches for i in b) == list(range(len(val)))
    ratios = np.log2([w / h for h, w in val.sizes()])
    spread = [np.ptp(ratios[b]) for b in first if len(b) == 4]
    assert np.median(spread) < 0.3  # portrait with portrait


def test_training_samples_are_resized_and_crowds_left_out(val):
    data = copy.deepcopy(val.subset([0, 1]))
    data.targets[0].iscrowd[0] = 1
    task = DetectionTask(["person"], sizes=Sizes.around(256))
    train = task.dataset(data, None, train=True, augment="light")
    image, target = train[0]
    assert min(image.shape[-2:]) in task.sizes.train_sizes and image.dtype == torch.float32
    assert len(target["boxes"]) == len(data.targets[0]) - 1 and 0 <= float(image.min())
    evaluated = task.dataset(data, None)[0]
    assert tuple(evaluated[0].shape[-2:]) == (data.targets[0].height, data.targets[0].width)
    assert evaluated[1]["iscrowd"].tolist()[0] == 1


def test_coco_metrics_of_the_true_boxes_and_of_moved_ones(val):
    truth = [
        {
            "boxes": torch.as_tensor(t.boxes),
            "labels": torch.as_tensor(t.labels),
            "scores": torch.ones(len(t)),
        }
        for t in val.targets
    ]
    perfect = detection_metrics(truth, val)
    assert perfect["map"] == perfect["map_50"] == 1.0 and perfect["worst"] == []
    assert perfect["per_class"]["person"]["ap"] == 1.0 and perfect["num_objects"] == 131
    assert perfect["pr_curves"]["person"]["precision_50"][-1] == 1.0
    moved = [{**t, "boxes": t["boxes"] + torch.tensor([30.0, 0.0, 30.0, 0.0])} for t in truth]
    worse = detection_metrics(moved, val)
    assert worse["map"] < 0.6 and worse["map_50"] <= 1.0 and worse["worst"]
    first = worse["worst"][0]
    assert first["errors"] == first["false"] + first["missed"] > 0 and first["image"] in val.images


def test_answers_sort_threshold_and_carry_rle_masks():
    masks = torch.zeros(3, 1, 20, 30)
    masks[1, 0, 5:10, 5:15] = 0.9
    found = {
        "boxes": torch.tensor([[1.0, 2, 3, 4], [5, 5, 15, 10], [0, 0, 1, 1]]),
        "labels": torch.tensor([0, 1, 0]),
        "scores": torch.tensor([0.4, 0.9, 0.7]),
        "masks": masks,
    }
    kept = compact(found)
    answers = answer_list(kept, ["cat", "dog"], 0.5)
    assert [(a["label"], a["score"]) for a in answers] == [("dog", 0.9), ("cat", 0.7)]
    assert answers[0]["box"] == [5.0, 5.0, 15.0, 10.0]
    from pycocotools import mask as coco_mask

    decoded = coco_mask.decode(answers[0]["mask"])
    assert decoded.shape == (20, 30) and decoded.sum() == 50 and decoded[5:10, 5:15].all()
    assert json.loads(json.dumps(answers)) == answers


def test_torchvision_detectors_load_a_local_file_and_say_how_when_offline(tmp_path, monkeypatch):
    from graft.tasks.detection import torchvision_models as tvd

    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    random_weights = tvd.create_torchvision_detector(f"torchvision:{name}", pretrained=False)
    state = {
        **{f"backbone.body.{k}": v for k, v in random_weights.body.state_dict().items()},
        **random_weights.detector_parts.state_dict(),
    }
    file = tmp_path / "weights.pth"
    torch.save({"model": state}, file)
    loaded = tvd.create_torchvision_detector(f"torchvision:{name}@{file}")
    for key, value in random_weights.body.state_dict().items():
        assert torch.equal(loaded.body.state_dict()[key], value)
    assert len(loaded.parameter_groups()) >= 5 and loaded.channels == [160, 960]
    settings = DetectorSettings("fasterrcnn", 3, False, 320, 640, (0.5,) * 3, (0.5,) * 3)
    head = build_head(loaded, settings)
    assert head.detector.roi_heads.box_predictor.cls_score.out_features == 4
    fpn = "detector.backbone.fpn.inner_blocks.0.0.weight"
    assert torch.equal(head.state_dict()[fpn], state["backbone.fpn.inner_blocks.0.0.weight"])

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ModelUnavailableError, match=rf"torchvision:{name}@/path/to/"):
        tvd.create_torchvision_detector(f"torchvision:{name}")
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        tvd.create_torchvision_detector(f"torchvision:{name}@{tmp_path / 'missing.pth'}")
    with pytest.raises(ModelUnavailableError, match="takes one of"):
        tvd.create_torchvision_detector("torchvision:ssd300_vgg16")


def test_the_detector_resize_comes_out_of_onnx_runtime_pixel_for_pixel(val, tmp_path):
    """A 544 x 425 photo at a shorter side of 160: float32 rounding once made the exported
    resize give 159 rows where PyTorch gives 160, and other detections
    (graft.tasks.detection.detectors)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from graft.tasks.detection.detectors import ExportableTransform

    transform = ExportableTransform(160, 267, [0.5] * 3, [0.5] * 3).eval()

    class Resized(torch.nn.Module):
        def forward(self, image):
            return transform([image])[0].tensors

    (example, _), (photo, _) = DetectionDataset(val.subset([0, 4]).images)  # 559x536, 544x425
    path = tmp_path / "resize.onnx"
    dynamic = {"image": {1: "height", 2: "width"}}
    torch.onnx.export(
        Resized(), (example,), str(path), input_names=["image"], dynamic_axes=dynamic, dynamo=False
    )
    session = ort.InferenceSession(str(path))
    ours = Resized()(photo)
    theirs = torch.from_numpy(session.run(None, {"image": photo.numpy()})[0])
    assert ours.shape == theirs.shape == (1, 3, 160, 224)
    assert float((ours - theirs).abs().max()) < 1e-3
