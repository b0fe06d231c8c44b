"""Shift consistency: how often a classifier predicts the same class for two shifts of an image.

Protocols (each image gets two independent shifts, uniform in ``[-max_shift, max_shift]`` per axis):

* ``random`` -- Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019): for CIFAR the
  two views are pad-and-crop shifts (``mode="zeros"``, the padding mode is a parameter).
* ``circular`` -- the "truly shift-invariant" protocol (Chaman & Dokmanic, CVPR 2021): the two views
  are ``torch.roll`` shifts, so no content leaves the image.

Plus, optionally, a curve: agreement of each shift ``(dx, dy)`` on a grid with the unshifted prediction,
and accuracy under each shift.

The shifts of a sample depend only on ``(seed, sample index)``, never on the batch or the process, and
the counts are integers summed across processes, so a data-parallel evaluation over disjoint shards
gives exactly the single-process numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from .intervals import proportion_ci
from .shift import check_images, check_mode, shift

PROTOCOLS = {"random": None, "circular": "circular"}  # protocol -> forced mode (None: the evaluator's mode)
_MASK = (1 << 31) - 1


def hashed_shifts(indices: Tensor, salt: int, max_shift: int) -> Tensor:
    """Deterministic integers in ``[-max_shift, max_shift]`` from sample indices (N,) and a salt."""
    x = (indices.long() * 1103515245 + (salt * 12345 + 1013904223)) & _MASK
    for _ in range(2):
        x = x ^ (x >> 16)
        x = (x * 0x45D9F3B) & _MASK
    x = x ^ (x >> 16)
    return x.remainder(2 * max_shift + 1) - max_shift


def agreement_counts(pred_a: Tensor, pred_b: Tensor, references: Optional[Tensor] = None) -> tuple[int, int, int]:
    """``(n, agreeing, correct)`` for paired predictions (N,); ``correct`` counts ``pred_a == references``."""
    if pred_a.shape != pred_b.shape or pred_a.dim() != 1:
        raise ValueError(f"predictions must both have shape (N,), got {tuple(pred_a.shape)} and {tuple(pred_b.shape)}")
    correct = int((pred_a == references).sum()) if references is not None else 0
    return pred_a.numel(), int((pred_a == pred_b).sum()), correct


def consistency_from_predictions(pred_a: Tensor, pred_b: Tensor) -> float:
    """Percent of samples whose two predictions agree."""
    n, agree, _ = agreement_counts(pred_a, pred_b)
    if n == 0:
        raise ValueError("no predictions: consistency of an empty set is undefined")
    return 100.0 * agree / n


@dataclass
class ConsistencyReport:
    """Counts and percentages of one evaluation; ``curve_*`` are (2c+1, 2c+1) grids indexed [dy+c, dx+c]."""

    samples: int
    correct: int
    agree: dict
    curve_agree: Optional[Tensor] = None
    curve_correct: Optional[Tensor] = None
    curve_samples: int = 0

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / max(self.samples, 1)

    def consistency(self, protocol: str = "random") -> float:
        return 100.0 * self.agree[protocol] / max(self.samples, 1)

    def to_dict(self) -> dict:
        """JSON-ready summary with 95% Wilson intervals."""
        out = {"samples": self.samples, "accuracy": self.accuracy, "accuracy_ci95": proportion_ci(self.correct, self.samples)}
        for protocol, agree in self.agree.items():
            out[f"consistency_{protocol}"] = 100.0 * agree / max(self.samples, 1)
            out[f"consistency_{protocol}_ci95"] = proportion_ci(agree, self.samples)
        if self.curve_agree is not None:
            scale = 100.0 / max(self.curve_samples, 1)
            out["curve_consistency"] = (self.curve_agree.double() * scale).tolist()
            out["curve_accuracy"] = (self.curve_correct.double() * scale).tolist()
        return out


class ShiftConsistency:
    """Accumulate accuracy and shift consistency over batches; ``compute()`` sums across processes.

    ``max_shift``: range of the two random shifts; ``mode``: padding of the ``random`` protocol;
    ``curve_max_shift``: when set, also every shift on the grid ``[-c, c]^2`` (costs (2c+1)^2 forwards
    per image). ``chunk_size``: images per forward. ``update(model, images, targets, indices)`` with
    ``indices`` the samples' global dataset indices (they key the shifts); without them a running
    count is used, which is right only when one process sees every sample once, in order.
    """

    def __init__(
        self,
        *,
        max_shift: int = 4,
        mode: str = "zeros",
        protocols: Iterable[str] = tuple(PROTOCOLS),
        curve_max_shift: Optional[int] = None,
        seed: int = 0,
        chunk_size: int = 1024,
    ) -> None:
        check_mode(mode)
        self.protocols = tuple(protocols)
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocol(s) {unknown}; supported: {', '.join(PROTOCOLS)}")
        if max_shift < 0 or (curve_max_shift is not None and curve_max_shift < 0):
            raise ValueError("max_shift and curve_max_shift must be >= 0")
        self.max_shift, self.mode, self.seed, self.chunk_size = max_shift, mode, seed, chunk_size
        self.curve_max_shift = curve_max_shift
        self._seen = 0
        side = 2 * curve_max_shift + 1 if curve_max_shift is not None else 0
        # counts: [samples, correct, agree per protocol..., curve agree (side*side)..., curve correct...]
        self.counts = torch.zeros(2 + len(self.protocols) + 2 * side * side, dtype=torch.long)

    def _predict(self, model: Callable[[Tensor], Tensor], views: Tensor) -> Tensor:
        preds = []
        for chunk in views.split(self.chunk_size):
            logits = model(chunk)
            if not bool(torch.isfinite(logits).all()):  # argmax of NaN logits is class 0 for every view: "consistent"
                raise ValueError(
                    "the model returned non-finite logits (NaN or inf): its predictions, and so its shift consistency, "
                    "are undefined; check the weights (a diverged run?) and the inputs"
                )
            preds.append(logits.argmax(dim=1))
        return torch.cat(preds)

    def _check_size(self, h: int, w: int) -> None:
        largest = max(self.max_shift, self.curve_max_shift or 0)
        if largest >= min(h, w):
            raise ValueError(f"shifts up to {largest} px do not fit images of H={h}, W={w}; use a smaller max_shift")

    @torch.no_grad()
    def flags(
        self,
        model: Callable[[Tensor], Tensor],
        images: Tensor,
        targets: Tensor,
        indices: Optional[Tensor] = None,
    ) -> Tensor:
        """Per-sample 0/1 outcomes (N, F) for ``images`` (N, C, H, W) and class ``targets`` (N,).

        Columns: [1, correct, agree per protocol..., curve agree per grid shift..., curve correct...];
        their column sums are this batch's counts. Gather them across processes (e.g. with
        ``accelerator.gather_for_metrics``) and :meth:`add` them, or call :meth:`update`.
        """
        check_images(images, "images", floating=True)
        n = images.shape[0]
        if targets.shape != (n,) or targets.is_floating_point():
            raise ValueError(f"targets must be class indices of shape ({n},), got {tuple(targets.shape)} {targets.dtype}")
        self._check_size(images.shape[-2], images.shape[-1])
        if indices is None:
            indices = torch.arange(self._seen, self._seen + n)
        self._seen += n
        indices = indices.to(images.device)
        views = [images]
        for p, protocol in enumerate(self.protocols):
            mode = PROTOCOLS[protocol] or self.mode
            for view in range(2):
                salt = self.seed * 1000 + p * 10 + view * 2
                dx = hashed_shifts(indices, salt, self.max_shift)
                dy = hashed_shifts(indices, salt + 1, self.max_shift)
                views.append(shift(images, dx, dy, mode))
        c = self.curve_max_shift
        grid = [(dx, dy) for dy in range(-c, c + 1) for dx in range(-c, c + 1)] if c is not None else []
        views.extend(shift(images, dx, dy, self.mode) for dx, dy in grid)
        preds = self._predict(model, torch.cat(views)).view(len(views), n)
        targets = targets.to(preds.device)
        k = len(self.protocols)
        curve = preds[1 + 2 * k:]
        columns = [torch.ones_like(targets), preds[0] == targets]
        columns += [preds[1 + 2 * p] == preds[2 + 2 * p] for p in range(k)]
        return torch.cat([torch.stack(columns), curve == preds[0], curve == targets]).t().long()

    def add(self, flags: Tensor) -> None:
        """Add per-sample outcomes from :meth:`flags` (any number of rows, e.g. gathered ones)."""
        if flags.dim() != 2 or flags.shape[1] != self.counts.numel():
            raise ValueError(f"flags must have shape (N, {self.counts.numel()}), got {tuple(flags.shape)}")
        self.counts += flags.sum(dim=0).cpu()

    def update(
        self,
        model: Callable[[Tensor], Tensor],
        images: Tensor,
        targets: Tensor,
        indices: Optional[Tensor] = None,
    ) -> None:
        """Evaluate ``model`` (in eval mode) on one batch and add its counts."""
        self.add(self.flags(model, images, targets, indices))

    def compute(self, *, sync: bool = True) -> ConsistencyReport:
        """Report; with ``sync`` the counts are first summed over all processes (when torch.distributed
        is initialised). Pass ``sync=False`` when every process already added gathered flags."""
        counts = self.counts.clone()
        if sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
            counts = counts.to(backend_device)
            dist.all_reduce(counts)
            counts = counts.cpu()
        k = len(self.protocols)
        report = ConsistencyReport(
            samples=int(counts[0]), correct=int(counts[1]),
            agree={protocol: int(counts[2 + i]) for i, protocol in enumerate(self.protocols)},
        )
        if self.curve_max_shift is not None:
            side = 2 * self.curve_max_shift + 1
            grid = counts[2 + k:].view(2, side, side)
            report.curve_agree, report.curve_correct, report.curve_samples = grid[0], grid[1], report.samples
        return report


def evaluate_shift_consistency(
    model: torch.nn.Module,
    batches: Iterable,
    *,
    device: Optional[torch.device] = None,
    progress: bool = False,
    **options,
) -> ConsistencyReport:
    """Evaluate ``model`` over ``batches`` of ``(images, targets)`` or ``(images, targets, indices)``.

    ``options`` are those of :class:`ShiftConsistency`. The model is put in eval mode for the pass and
    its previous mode is restored.
    """
    from tqdm.auto import tqdm

    metric = ShiftConsistency(**options)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="shift consistency", disable=not progress, leave=False):
            images, targets, *rest = batch
            indices = rest[0] if rest else None
            metric.update(model, images.to(device), targets.to(device), indices)
    finally:
        model.train(was_training)
    return metric.compute()
