"""The embedded default data set: procedurally drawn shapes, so the demo needs no download.

Ten classes of shapes (disk, square, triangle, plus, ring, horizontal bar, vertical bar, diagonal,
X, diamond) of random size (3 to 7 px radius at 32 px), colour, contrast and position on a noisy background. The same seed gives the same
images on every machine. Position varies, so shift invariance matters, as for natural images.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

SHAPE_CLASSES = ("disk", "square", "triangle", "plus", "ring", "hbar", "vbar", "diagonal", "x", "diamond")


def _masks(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Masks of every class for normalised coordinates u (right), v (down) in [-1, 1]: (K, ...)."""
    au, av = np.abs(u), np.abs(v)
    radius = np.sqrt(u * u + v * v)
    thin = 0.3
    return np.stack([
        radius <= 1.0,
        (au <= 0.8) & (av <= 0.8),
        (v <= 0.8) & (v >= 1.6 * au - 0.8),
        ((au <= thin) & (av <= 1.0)) | ((av <= thin) & (au <= 1.0)),
        (radius <= 1.0) & (radius >= 0.6),
        (au <= 1.0) & (av <= thin),
        (av <= 1.0) & (au <= thin),
        (np.abs(u - v) <= 0.4) & (au <= 1.0) & (av <= 1.0),
        ((np.abs(u - v) <= 0.4) | (np.abs(u + v) <= 0.4)) & (au <= 1.0) & (av <= 1.0),
        au + av <= 1.0,
    ])


def make_shapes(n: int, *, size: int = 32, seed: int = 0) -> tuple[Tensor, Tensor]:
    """`n` shape images: `uint8` (n, 3, size, size) and `long` labels (n,) in [0, 10).

    Args:
        n: the number of images (> 0).
        size: their side in pixels (>= 8).
        seed: the same seed gives the same images on every machine.

    Returns:
        `(images, labels)`: `uint8` (n, 3, size, size) and `long` (n,), labels indexing
        `SHAPE_CLASSES`.

    Examples:
        >>> images, labels = make_shapes(4, size=16, seed=0)
        >>> images.shape, images.dtype, labels.shape
        (torch.Size([4, 3, 16, 16]), torch.uint8, torch.Size([4]))
        >>> torch.equal(images, make_shapes(4, size=16, seed=0)[0])
        True
    """
    if n <= 0 or size < 8:
        raise ValueError(f"need n > 0 images of size >= 8, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_CLASSES), n)
    radius = rng.uniform(0.1, 0.22, n) * size
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    grid = np.arange(size, dtype=np.float64) + 0.5
    u = (grid[None, None, :] - cx[:, None, None]) / radius[:, None, None]
    v = (grid[None, :, None] - cy[:, None, None]) / radius[:, None, None]
    mask = _masks(u, v)[labels, np.arange(n)]  # (n, size, size)
    background = rng.uniform(0.2, 0.8, (n, 3, 1, 1))
    contrast = rng.uniform(0.1, 0.45, (n, 1, 1, 1)) * rng.choice([-1.0, 1.0], (n, 1, 1, 1))
    noise = rng.normal(0, 0.12, (n, 3, size, size))
    images = background + contrast * mask[:, None] + noise
    images = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(labels).long()
