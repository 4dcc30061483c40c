"""SimCLR: contrastive pre-training of an image backbone on unlabelled images.

Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020. Each image of a batch of N is augmented twice (random crop and
resize, flip, colour jitter, greyscale, blur on larger images); the backbone and a small
projection head map the 2N views to vectors z, and the NT-Xent loss (:func:`nt_xent_loss`)
pulls the two views of an image together and pushes the other 2N - 2 views away. The
projection head is dropped afterwards: the backbone's features are the representation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from graft.backbones.base import Backbone, ImagePreprocessing
from graft.data import LabelledData
from graft.data.images import open_rgb
from graft.data.transforms import seeded_view
from graft.pretraining.base import PretrainModule, num_workers
from graft.training.phase import Phase
from graft.training.sampling import seeded_order, worker_options

#: Images at least this large also get SimCLR's Gaussian blur (Chen et al. leave it out on
#: 32-pixel CIFAR images).
BLUR_MIN_SIZE = 96


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """The normalised temperature-scaled cross-entropy (NT-Xent) of N positive pairs.

    With the 2N vectors ``z1[k]``, ``z2[k]`` L2-normalised, ``s(u, v)`` their dot product (the
    cosine similarity) and ``t`` the temperature, the loss of view ``i`` with its partner ``j``
    is::

        l(i, j) = -log( exp(s(z_i, z_j) / t) / sum_{k != i} exp(s(z_i, z_k) / t) )

    and the result is its mean over the 2N views (each view's partner is its one positive, the
    other 2N - 2 views its negatives).

    Args:
        z1, z2: ``[N, d]`` projections of the first and second view of N images (N >= 2).
        temperature: ``t`` > 0; lower sharpens the contrast between positives and negatives.

    Returns:
        The loss, a scalar.

    Example:
        >>> z = torch.randn(8, 128)
        >>> bool(nt_xent_loss(z, z) < nt_xent_loss(z, torch.randn(8, 128)))
        True
    """
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = (z @ z.T) / temperature
    itself = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(itself, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, partner)


class NTXentLoss(nn.Module):
    """:func:`nt_xent_loss` at a fixed ``temperature``."""

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent_loss(z1, z2, self.temperature)


class ProjectionHead(nn.Sequential):
    """SimCLR's projection g: linear, BatchNorm, ReLU, linear to ``out_dim`` (dropped after
    pre-training)."""

    def __init__(self, feature_dim: int, out_dim: int = 128):
        super().__init__(
            nn.Linear(feature_dim, feature_dim),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, out_dim),
        )


def simclr_transform(preprocessing: ImagePreprocessing, flip: bool = True) -> Callable:
    """SimCLR's augmentation with timm's transforms, at the backbone's size, mean and std:
    random-resized crop (20-100% of the area), horizontal flip (``flip``), colour jitter
    (0.4, 0.4, 0.4, 0.1) with probability 0.8, greyscale with probability 0.2, and Gaussian
    blur with probability 0.5 on images of at least :data:`BLUR_MIN_SIZE` pixels."""
    from timm.data import create_transform

    return create_transform(
        input_size=(3, *preprocessing.input_size),
        is_training=True,
        scale=(0.2, 1.0),
        hflip=0.5 if flip else 0.0,
        color_jitter=(0.4, 0.4, 0.4, 0.1),
        color_jitter_prob=0.8,
        grayscale_prob=0.2,
        gaussian_blur_prob=0.5 if min(preprocessing.input_size) >= BLUR_MIN_SIZE else 0.0,
        interpolation=preprocessing.interpolation,
        mean=preprocessing.mean,
        std=preprocessing.std,
    )


class ViewPairs(Dataset):
    """Two augmented views of each image. ``fixed_seed``: each view drawn under a seed of its
    own (from ``fixed_seed``, the image's position and the view), the same in every epoch and
    wherever the folder lives: the validation loss then measures the backbone, not the luck of
    the augmentation."""

    def __init__(self, items: list[str], transform: Callable, fixed_seed: int | None = None):
        self.items = items
        self.transform = transform
        self.fixed_seed = fixed_seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = open_rgb(self.items[index])
        if self.fixed_seed is None:
            return self.transform(image), self.transform(image)
        return self._fixed(image, index, 1), self._fixed(image, index, 2)

    def _fixed(self, image, index: int, view: int) -> torch.Tensor:
        return seeded_view(self.transform, image, f"{self.fixed_seed}#{index}#{view}")


class SimCLRModule(PretrainModule):
    """The backbone and a :class:`ProjectionHead` trained by :func:`nt_xent_loss`."""

    def __init__(
        self,
        backbone: Backbone,
        phase: Phase,
        weight_decay: float = 0.01,
        temperature: float = 0.5,
        projection_dim: int = 128,
    ):
        super().__init__(phase, weight_decay)
        self.backbone = backbone
        self.projection = ProjectionHead(backbone.feature_dim, projection_dim)
        self.criterion = NTXentLoss(temperature)

    def batch_loss(self, batch) -> tuple[torch.Tensor, int]:
        first, second = batch
        n = len(first)
        z = self.projection(self.backbone(torch.cat([first, second])))
        return self.criterion(z[:n], z[n:]), n

    def backbone_parameters(self) -> Iterable[nn.Parameter]:
        return self.backbone.parameters()

    def head_parameters(self) -> Iterable[nn.Parameter]:
        return self.projection.parameters()


def prepare(
    backbone: Backbone,
    train: LabelledData,
    val: LabelledData,
    config,
    phase: Phase,
) -> tuple[SimCLRModule, DataLoader, DataLoader]:
    """The module and the loaders of SimCLR pre-training (``config``: a resolved
    :class:`graft.pretraining.PretrainConfig`)."""
    transform = simclr_transform(backbone.preprocessing, flip=config.flip)
    module = SimCLRModule(
        backbone,
        phase,
        weight_decay=config.weight_decay,
        temperature=config.temperature,
        projection_dim=config.projection_dim,
    )
    workers = num_workers(config)
    batch = config.batch_size
    train_loader = DataLoader(
        ViewPairs(train.items, transform),
        batch_size=batch,
        drop_last=len(train) > batch,  # a last batch of one image has nothing to contrast
        **seeded_order(len(train), config.seed),
        **worker_options(workers),
    )
    val_loader = DataLoader(
        ViewPairs(val.items, transform, fixed_seed=config.seed),
        batch_size=batch,
        drop_last=len(val) > batch,
        **worker_options(workers),
    )
    return module, train_loader, val_loader
