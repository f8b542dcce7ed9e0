"""Loading image classification data into memory: digits, ``.npz`` arrays, an ImageFolder tree.

Every loader returns images as one float32 tensor (N, 3, H, W) in [0, 1] and int64 labels.
Bad data is a one-line ``UserError`` (missing path, empty class folder, mismatched arrays) or,
for single unreadable files in a tree, a skip recorded in ``ImageDataset.skipped``; nothing
fails later, mid-epoch, because everything is decoded and checked here, up front.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".npy")
DEFAULT_TREE_SIZE = 64  # pixels: images of a tree are stored at this size, cropped/resized per batch


@dataclass
class ImageDataset:
    """Images (N, 3, H, W) float32 in [0, 1], labels (N,) int64, class names, files skipped."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx: np.ndarray | torch.Tensor) -> "ImageDataset":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return ImageDataset(self.images[idx], self.labels[idx], self.classes, self.source, self.skipped)

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std (for normalisation), from these images."""
        m = self.images.mean(dim=(0, 2, 3))
        s = self.images.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return m, s


def load_dataset(spec: str, image_size: int | None = None) -> ImageDataset:
    """``"digits"`` (scikit-learn's bundled 8x8 handwritten digits), ``PATH.npz`` or an ImageFolder ``DIR``.

    ``image_size``: the size images of a tree are stored at (default 64); ignored for arrays.
    """
    if spec == "digits":
        return load_digits()
    p = Path(spec)
    if not p.exists():
        raise UserError(f"data {spec!r} does not exist; accepted: digits, a .npz file (images, labels) "
                        "or a folder with one sub-folder of images per class")
    if p.is_file():
        if p.suffix != ".npz":
            raise UserError(f"data file {spec!r} is not a .npz; accepted: digits, a .npz file (images, labels) "
                            "or a folder with one sub-folder of images per class")
        return load_npz(p)
    return load_image_folder(p, image_size or DEFAULT_TREE_SIZE)


def load_digits() -> ImageDataset:
    """scikit-learn's 1797 real 8x8 handwritten digits (grey levels 0..16), as 3-channel images."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).div_(16.0).unsqueeze(1).expand(-1, 3, -1, -1)
    return ImageDataset(x.contiguous(), torch.as_tensor(d.target, dtype=torch.long),
                        [str(c) for c in d.target_names], "digits")


def _to_nchw(images: np.ndarray, where: str) -> torch.Tensor:
    """(N,H,W), (N,H,W,C) or (N,C,H,W) with C in 1/3, uint8 or float -> float32 (N,3,H,W) in [0,1]."""
    a = np.asarray(images)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise UserError(f"{where}: images must be a numeric array, got dtype {a.dtype}")
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise UserError(f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3; "
                        f"got shape {tuple(np.shape(images))}")
    x = torch.as_tensor(np.ascontiguousarray(a)).float()
    if not torch.isfinite(x).all():
        raise UserError(f"{where}: images hold NaN or infinite values")
    if np.issubdtype(a.dtype, np.integer) or x.max() > 1.0:
        x = x / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()


def load_npz(path: Path) -> ImageDataset:
    """A ``.npz`` holding ``images`` and integer ``labels`` (and optionally ``classes``)."""
    where = f"data file {str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - zip/format errors all mean "not a readable npz"
        raise UserError(f"{where} is not a readable .npz: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
    missing = [k for k in ("images", "labels") if k not in arrays]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}; accepted: arrays 'images' (N, H, W[, C]) and "
                        f"'labels' (N,) ints; found: {', '.join(sorted(arrays)) or 'none'}")
    labels = arrays["labels"]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{where}: labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    if len(arrays["images"]) != len(labels):
        raise UserError(f"{where}: {len(arrays['images'])} images but {len(labels)} labels")
    if len(labels) == 0:
        raise UserError(f"{where} holds no images")
    if labels.min() < 0:
        raise UserError(f"{where}: labels must be >= 0, found {int(labels.min())}")
    x = _to_nchw(arrays["images"], where)
    n_classes = int(labels.max()) + 1
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else [str(i) for i in range(n_classes)]
    if len(classes) < n_classes:
        raise UserError(f"{where}: {len(classes)} class names but labels up to {n_classes - 1}")
    return ImageDataset(x, torch.as_tensor(labels, dtype=torch.long), classes, str(path))


def _decode(path: Path, size: int) -> torch.Tensor:
    """One image file as (3, size, size) float32 in [0, 1]; raises on anything unreadable."""
    if path.suffix.lower() == ".npy":
        x = _to_nchw(np.load(path, allow_pickle=False)[None], str(path))
    else:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            im.load()
            a = np.asarray(im, dtype=np.uint8)
        x = torch.as_tensor(a.copy()).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


def load_image_folder(root: Path, size: int) -> ImageDataset:
    """``root/CLASS/*.png|jpg|...|npy``; unreadable files are skipped and listed in ``skipped``."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UserError(f"data folder {str(root)!r} has no class sub-folders; expected ROOT/CLASS/image files")
    images, labels, skipped = [], [], []
    for ci, c in enumerate(classes):
        files = sorted(f for f in (root / c).rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"class folder {str(root / c)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                            "remove it or add images")
        n_ok = 0
        for f in files:
            try:
                images.append(_decode(f, size))
            except Exception as e:  # noqa: BLE001 - a corrupt file is skipped and reported, not fatal
                skipped.append(f"{os.path.relpath(f, root)}: {(str(e).splitlines() or [type(e).__name__])[0][:120]}")
                continue
            labels.append(ci)
            n_ok += 1
        if n_ok == 0:
            raise UserError(f"class folder {str(root / c)!r}: none of its {len(files)} images could be read "
                            f"(first: {skipped[-1]})")
    return ImageDataset(torch.stack(images), torch.as_tensor(labels, dtype=torch.long), classes, str(root), skipped)


def split_held_out(labels: torch.Tensor | np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a stratified split, the same for the same labels and seed."""
    if not 0 < fraction < 1:
        raise UserError(f"held-out fraction must be in (0, 1), got {fraction}")
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keys = rng.random(len(y))
    order = np.lexsort((keys, y))                 # by class, random within a class
    starts = np.searchsorted(y[order], np.unique(y))
    counts = np.diff(np.append(starts, len(y)))
    n_held = np.where(counts >= 2, np.maximum(1, np.round(counts * fraction)), 0).astype(int)
    rank = np.arange(len(y)) - np.repeat(starts, counts)
    held_mask = np.zeros(len(y), dtype=bool)
    held_mask[order] = rank < np.repeat(n_held, counts)
    return np.flatnonzero(~held_mask), np.flatnonzero(held_mask)
