"""Backbone features computed once and cached on disk, keyed by what determines them.

A frozen backbone gives the same features for the same input every time, so graft computes them
once. The key of an entry is the backbone's fingerprint (its weights and preprocessing) and the
SHA-256 of the input's content (the file's bytes, or the text), so renaming or moving files keeps
their features, while editing a file or changing the weights misses the cache. A second fit on
the same data with another head or learning rate then does no backbone forward pass at all.

Layout: ``<root>/<fingerprint[:24]>/shard-*.safetensors``, each shard holding ``keys``
(``uint8[n, 32]``) and ``features`` (``float32[n, dim]``), written atomically (a temporary file,
then a rename: readers never see half a shard), with the SHA-256 of both in its metadata. A
shard that cannot be read or whose checksum fails is deleted with a warning and its features
are computed again: a corrupt entry is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from graft.backbones.base import Backbone
from graft.data.dataset import LabelledData
from graft.data.transforms import Collate, InputDataset, longest_first

log = logging.getLogger("graft")


def default_cache_dir() -> Path:
    """``$GRAFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/graft``, else ``~/.cache/graft``."""
    if os.environ.get("GRAFT_CACHE_DIR"):
        return Path(os.environ["GRAFT_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "graft"


@dataclass
class CacheStats:
    """How many inputs came from the cache and how many went through the backbone."""

    hits: int = 0
    misses: int = 0

    def add(self, other: CacheStats) -> None:
        self.hits += other.hits
        self.misses += other.misses


class FeatureCache:
    """Features of a frozen backbone on disk, computed only for inputs not seen before."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir() / "features"
        self.stats = CacheStats()

    def features(
        self,
        backbone: Backbone,
        data: LabelledData,
        batch_size: int = 64,
        num_workers: int = 0,
        view: int = 0,
        augment: str = "none",
    ) -> torch.Tensor:
        """``float32[len(data), feature_dim]`` for ``data``, from the cache where possible.

        ``view`` 0 is the evaluation preprocessing; ``view`` k > 0 a fixed augmented view
        under the ``augment`` preset, cached under its own key.
        """
        folder = self.root / backbone.fingerprint()[:24]
        keys = data.content_keys()
        if view > 0:
            suffix = f"{augment}#{view}".encode()
            keys = [hashlib.sha256(key + suffix).digest() for key in keys]
        stored = self._load(folder)
        missing = [i for i, key in enumerate(keys) if key not in stored]
        first_of_key: dict[bytes, int] = {}
        for index in missing:
            first_of_key.setdefault(keys[index], index)
        unique_missing = list(first_of_key.values())
        if unique_missing:
            computed = extract_features(
                backbone, data.subset(unique_missing), batch_size, num_workers, view, augment
            )
            new_keys = [keys[i] for i in unique_missing]
            stored.update(zip(new_keys, computed, strict=True))
            self._save(folder, new_keys, computed)
        self.stats.add(CacheStats(hits=len(keys) - len(missing), misses=len(missing)))
        return torch.stack([stored[key] for key in keys])

    def _load(self, folder: Path) -> dict[bytes, torch.Tensor]:
        stored: dict[bytes, torch.Tensor] = {}
        for shard in sorted(folder.glob("shard-*.safetensors")):
            try:
                tensors = load_file(shard)
                keys, features = tensors["keys"].numpy(), tensors["features"]
                with safe_open(shard, "pt") as handle:
                    recorded = (handle.metadata() or {}).get("sha256")
                if recorded is not None and recorded != _checksum(tensors["keys"], features):
                    raise ValueError("its checksum does not match its contents")
            except (SafetensorError, KeyError, ValueError) as error:  # the shard is bad
                log.warning("feature cache: dropping corrupt %s (%s); recomputing", shard, error)
                with contextlib.suppress(OSError):  # a read-only cache: skip it, still unused
                    shard.unlink()
                continue
            except OSError as error:  # the file system, not the shard: leave it for later
                log.warning("feature cache: cannot read %s now (%s)", shard, error)
                continue
            for row, key in enumerate(keys):
                stored[key.tobytes()] = features[row]
        return stored

    @staticmethod
    def _save(folder: Path, keys: list[bytes], features: torch.Tensor) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        key_array = torch.from_numpy(
            np.frombuffer(bytearray(b"".join(keys)), dtype=np.uint8).reshape(-1, 32)
        )
        target = folder / f"shard-{uuid.uuid4().hex}.safetensors"
        temporary = target.with_suffix(".tmp")
        features = features.contiguous()
        metadata = {"sha256": _checksum(key_array, features)}
        save_file({"keys": key_array, "features": features}, temporary, metadata=metadata)
        os.replace(temporary, target)


def _checksum(keys: torch.Tensor, features: torch.Tensor) -> str:
    """SHA-256 of a shard's keys and features, stored in its metadata and checked on load."""
    digest = hashlib.sha256(keys.numpy().tobytes())
    digest.update(features.contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.inference_mode()
def extract_features(
    backbone: Backbone,
    data: LabelledData,
    batch_size: int = 64,
    num_workers: int = 0,
    view: int = 0,
    augment: str = "none",
) -> torch.Tensor:
    """One forward pass of the frozen backbone over ``data`` (evaluation preprocessing, or
    the fixed augmented ``view``); texts are batched longest first (less padding) and their
    features returned in ``data``'s order."""
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    order = longest_first(list(data.items)) if backbone.modality == "text" else None
    items = data.items if order is None else [data.items[i] for i in order]
    loader = DataLoader(
        InputDataset(items, None, backbone.preprocessing, augment=augment, view=view),
        batch_size=batch_size,
        collate_fn=Collate(backbone.preprocessing),
        num_workers=num_workers,
    )
    chunks = []
    for inputs, _ in loader:
        inputs = to_device(inputs, device)
        chunks.append(backbone(inputs).float().cpu())
    backbone.train(was_training)
    features = torch.cat(chunks)
    return features if order is None else features[torch.as_tensor(np.argsort(order))]


def to_device(inputs, device: torch.device):
    if isinstance(inputs, dict):
        return {name: tensor.to(device) for name, tensor in inputs.items()}
    return inputs.to(device)
