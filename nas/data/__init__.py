"""Image classification data for supernet training: an ImageFolder tree, ``.npz`` arrays, or digits.

``load_dataset("digits" | "PATH.npz" | "DIR")`` returns an in-memory ``ImageDataset``;
``split_held_out`` makes a deterministic stratified held-out split; ``transforms`` augments and
resizes whole batches with torch alone (no torchvision). See docs/training.md.
"""

from .datasets import ImageDataset, load_dataset, split_held_out
from .transforms import BatchTransform

__all__ = ["ImageDataset", "load_dataset", "split_held_out", "BatchTransform"]
