"""How a segmentation model runs on whole images: each image at the working scale, whole or
by overlapping tiles blended back when it is larger than a tile
(:mod:`graft.tasks.segmentation.tiling`), with the PyTorch modules or an exported model (which
takes tiles of one size)."""

from __future__ import annotations

from typing import Any

from graft.tasks.capabilities import ExportedGraph, JoinsOutputs


class TiledInference(ExportedGraph, JoinsOutputs):
    """Mixed into :class:`graft.tasks.segmentation.task.SegmentationTask` (which gives
    ``scale``, the working scale, and ``_fill``, how an exported model's tiles are padded)."""

    def infer(self, backbone: Any, head: Any, inputs: Any) -> list:
        """Each image's logits at the working scale (whole, or by blended tiles when larger
        than a tile) and its original size."""
        fill = black(backbone.preprocessing)
        run = self._tiled
        return run(lambda pixels: head(backbone(pixels)), inputs, pad_small=False, fill=fill)

    def infer_exported(self, engine: Any, inputs: Any) -> list:
        """As :meth:`infer`, with an exported model (which takes tiles of one size)."""
        return self._tiled(engine, inputs, pad_small=True, fill=self._fill)

    def _tiled(self, logits_of: Any, inputs: Any, pad_small: bool, fill: Any) -> list:
        import torch

        from graft.tasks.segmentation.tiling import predict_tiled

        tile, overlap = self.scale.tile, self.scale.overlap
        return [
            (
                predict_tiled(logits_of, image, tile, overlap, pad_small=pad_small, fill=fill),
                torch.tensor(size),
            )
            for image, size in zip(inputs.images, inputs.sizes, strict=True)
        ]

    def model_inputs(self, batch: Any) -> Any:
        """The tiles an exported model runs for a batch of images: ``[n, 3, tile, tile]``."""
        import torch

        from graft.tasks.segmentation.tiling import tiles_of

        tile, overlap = self.scale.tile, self.scale.overlap
        return torch.cat([tiles_of(i, tile, overlap, self._fill) for i in batch.images])

    def join(self, chunks: list) -> list:
        return [output for chunk in chunks for output in chunk]


def black(preprocessing: Any) -> list[float]:
    """Black after normalising, per channel: how images are padded (as training crops and
    validation images are, before normalising)."""
    return [-m / d for m, d in zip(preprocessing.mean, preprocessing.std, strict=True)]
