"""Batch transforms on torch alone: random-resized crop, flip, resize to the active resolution, normalise.

One ``affine_grid`` + ``grid_sample`` does crop, flip and resize for a whole batch at once (no
per-sample Python loop). Randomness comes only from the ``torch.Generator`` passed in, so a run
is deterministic for a seed and resumes exactly when the generator's state is restored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class BatchTransform:
    """Training augmentation and evaluation resizing for (B, 3, H, W) float batches in [0, 1]."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, scale: tuple[float, float] = (0.5, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = False):
        self.mean = mean.view(1, -1, 1, 1).float()
        self.std = std.view(1, -1, 1, 1).float()
        self.scale, self.ratio, self.flip = scale, ratio, flip

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def train(self, x: torch.Tensor, resolution: int, gen: torch.Generator) -> torch.Tensor:
        """Random-resized crop (area ``scale``, aspect ``ratio``), optional flip, at ``resolution``."""
        b = x.shape[0]
        u = torch.rand(b, 4, generator=gen)
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 0]
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + (hi - lo) * u[:, 1])
        w = torch.sqrt(area * aspect).clamp(max=1.0)   # crop side / image side, in [0, 1]
        h = torch.sqrt(area / aspect).clamp(max=1.0)
        cx = (1 - w) * (2 * u[:, 2] - 1)               # crop centre in [-1, 1] coordinates
        cy = (1 - h) * (2 * u[:, 3] - 1)
        sx = w
        if self.flip:
            sx = torch.where(torch.rand(b, generator=gen) < 0.5, -w, w)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
        theta = theta.to(x.device, x.dtype)
        grid = F.affine_grid(theta, [b, x.shape[1], resolution, resolution], align_corners=False)
        return self._normalise(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False))

    def eval(self, x: torch.Tensor, resolution: int) -> torch.Tensor:
        """The whole image resized to ``resolution``, normalised."""
        return self._normalise(resize(x, resolution))


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """A batch resized to ``resolution`` (a no-op when it already has that size)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=x.shape[-1] > resolution)
