"""Shift consistency: how often a classifier predicts the same class for two shifts of an image.

Protocols (each image gets two independent shifts, uniform per axis over the protocol's range):

* ``random`` -- Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019): for CIFAR the
  two views are pad-and-crop shifts in ``[-max_shift, max_shift]`` (``mode="zeros"``, the padding mode is
  a parameter).
* ``random8``, ``random16`` -- the same with shifts in ``[-8, 8]`` and ``[-16, 16]`` px: harsher, since the
  paper's protocol is not given and its baseline (93.1 % top-1, 90.8 % consistency) implies harsher shifts.
* ``circular`` -- the "truly shift-invariant" protocol (Chaman & Dokmanic, CVPR 2021): the two views
  are ``torch.roll`` shifts in ``[-max_shift, max_shift]``, so no content leaves the image.
* ``circular_full`` -- ``torch.roll`` by an offset uniform over the whole image (``[0, W) x [0, H)``), as
  in Zhang 2019's CIFAR figures.

:data:`PROTOCOL_FAMILY` is all of them (what the benchmarks and the ``consistency`` command report); the
metric's default is the two cheap ones. Plus, optionally, a curve: agreement of each shift ``(dx, dy)`` on a
grid of offsets with the unshifted prediction, and accuracy under each shift.

The shifts of a sample depend only on ``(seed, sample index)``, never on the batch or the process, and
the counts are integers summed across processes, so a data-parallel evaluation over disjoint shards
gives exactly the single-process numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor

from .errors import UsageError
from .intervals import proportion_ci
from .shift import check_images, check_mode, shift

FULL = "full"  # a protocol's range: every offset of the image


@dataclass(frozen=True)
class Protocol:
    """How a protocol draws its two views: ``mode`` (``None``: the evaluator's padding mode) and ``reach``
    (``None``: the evaluator's ``max_shift``; an int: shifts in ``[-reach, reach]``; ``FULL``: any offset)."""

    mode: Optional[str]
    reach: Union[None, int, str]


# the order matters: a protocol's position keys its shifts (random and circular keep theirs of before)
PROTOCOLS = {
    "random": Protocol(None, None),
    "circular": Protocol("circular", None),
    "random8": Protocol(None, 8),
    "random16": Protocol(None, 16),
    "circular_full": Protocol("circular", FULL),
}
PROTOCOL_FAMILY = tuple(PROTOCOLS)
DEFAULT_PROTOCOLS = ("random", "circular")
_MASK = (1 << 31) - 1


def hashed_offsets(indices: Tensor, salt: int, count: int) -> Tensor:
    """Deterministic integers in ``[0, count)`` from sample indices (N,) and a salt."""
    x = (indices.long() * 1103515245 + (salt * 12345 + 1013904223)) & _MASK
    for _ in range(2):
        x = x ^ (x >> 16)
        x = (x * 0x45D9F3B) & _MASK
    x = x ^ (x >> 16)
    return x.remainder(count)


def hashed_shifts(indices: Tensor, salt: int, max_shift: int) -> Tensor:
    """Deterministic integers in ``[-max_shift, max_shift]`` from sample indices (N,) and a salt."""
    return hashed_offsets(indices, salt, 2 * max_shift + 1) - max_shift


def curve_grid(max_shift: int) -> tuple[int, ...]:
    """Every offset in ``[-max_shift, max_shift]``: the dense per-shift grid."""
    return tuple(range(-max_shift, max_shift + 1))


def curve_offsets_to(reach: int) -> tuple[int, ...]:
    """A sparse symmetric grid out to ``reach``: every offset up to 4, then powers of two and their 1.5x
    (0, ±1..±4, ±6, ±8, ±12, ±16, ...): 17 offsets (289 shifts) out to 16 px instead of 33 (1089)."""
    steps = {d for d in range(min(reach, 4) + 1)}
    d = 4
    while d < reach:
        steps.update(v for v in (d + d // 2, 2 * d) if v <= reach)
        d *= 2
    steps.add(reach)
    return tuple(sorted({-d for d in steps} | steps))


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
    """Counts and percentages of one evaluation; ``curve_*`` are (S, S) grids indexed
    ``[offsets.index(dy), offsets.index(dx)]`` with ``curve_offsets`` the S offsets per axis."""

    samples: int
    correct: int
    agree: dict
    curve_agree: Optional[Tensor] = None
    curve_correct: Optional[Tensor] = None
    curve_samples: int = 0
    curve_offsets: tuple = ()

    def _percent(self, count: int) -> float:
        if self.samples == 0:
            raise UsageError("no samples were evaluated (the data gave no batches): accuracy and consistency "
                             "are undefined; check the split and its size")
        return 100.0 * count / self.samples

    @property
    def accuracy(self) -> float:
        return self._percent(self.correct)

    def consistency(self, protocol: str = "random") -> float:
        return self._percent(self.agree[protocol])

    def to_dict(self) -> dict:
        """JSON-ready summary with 95% Wilson intervals."""
        out = {"samples": self.samples, "accuracy": self.accuracy, "accuracy_ci95": proportion_ci(self.correct, self.samples)}
        for protocol, agree in self.agree.items():
            out[f"consistency_{protocol}"] = self._percent(agree)
            out[f"consistency_{protocol}_ci95"] = proportion_ci(agree, self.samples)
        if self.curve_agree is not None:
            scale = 100.0 / self.curve_samples
            out["curve_offsets"] = list(self.curve_offsets)
            out["curve_consistency"] = (self.curve_agree.double() * scale).tolist()
            out["curve_accuracy"] = (self.curve_correct.double() * scale).tolist()
        return out


class ShiftConsistency:
    """Accumulate accuracy and shift consistency over batches; ``compute()`` sums across processes.

    ``max_shift``: range of the two random shifts of ``random`` and ``circular``; ``mode``: padding of the
    ``random*`` protocols; ``protocols``: names from :data:`PROTOCOLS` (:data:`PROTOCOL_FAMILY`: all);
    ``curve_max_shift``: when set, also every shift on the grid ``[-c, c]^2`` (costs (2c+1)^2 forwards
    per image); or ``curve_offsets``: the shifts ``offsets x offsets`` (e.g. :func:`curve_offsets_to`, a
    sparse grid out to a large range). ``chunk_size``: images per forward. ``update(model, images, targets, indices)`` with
    ``indices`` the samples' global dataset indices (they key the shifts); without them a running
    count is used, which is right only when one process sees every sample once, in order.
    """

    def __init__(
        self,
        *,
        max_shift: int = 4,
        mode: str = "zeros",
        protocols: Iterable[str] = DEFAULT_PROTOCOLS,
        curve_max_shift: Optional[int] = None,
        curve_offsets: Optional[Sequence[int]] = None,
        seed: int = 0,
        chunk_size: int = 1024,
    ) -> None:
        check_mode(mode)
        self.protocols = tuple(protocols)
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise UsageError(f"unknown protocol(s) {unknown}; supported: {', '.join(PROTOCOLS)}")
        if max_shift < 0 or (curve_max_shift is not None and curve_max_shift < 0):
            raise UsageError("max_shift and curve_max_shift must be >= 0")
        if curve_max_shift is not None and curve_offsets is not None:
            raise UsageError("give curve_max_shift (a dense grid) or curve_offsets, not both")
        self.max_shift, self.mode, self.seed, self.chunk_size = max_shift, mode, seed, chunk_size
        self.curve_offsets = curve_grid(curve_max_shift) if curve_max_shift is not None else (
            tuple(sorted(set(int(d) for d in curve_offsets))) if curve_offsets is not None else None)
        self._seen = 0
        side = len(self.curve_offsets) if self.curve_offsets is not None else 0
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

    def _reach(self, protocol: str) -> Union[int, str]:
        reach = PROTOCOLS[protocol].reach
        return self.max_shift if reach is None else reach

    def _check_size(self, h: int, w: int) -> None:
        reaches = [r for r in map(self._reach, self.protocols) if r != FULL]
        largest = max(reaches + [abs(d) for d in self.curve_offsets or ()] + [0])
        if largest >= min(h, w):
            raise UsageError(f"shifts up to {largest} px do not fit images of H={h}, W={w}; use a smaller max_shift, "
                             "fewer protocols or a smaller curve")

    def _views(self, images: Tensor, indices: Tensor, protocol: str) -> list[Tensor]:
        """The two shifted views of ``protocol``, keyed by the protocol's position in :data:`PROTOCOLS`."""
        spec, reach = PROTOCOLS[protocol], self._reach(protocol)
        salt0 = self.seed * 1000 + list(PROTOCOLS).index(protocol) * 10
        views = []
        for view in range(2):
            salt = salt0 + view * 2
            if reach == FULL:
                dx = hashed_offsets(indices, salt, images.shape[-1])
                dy = hashed_offsets(indices, salt + 1, images.shape[-2])
            else:
                dx, dy = hashed_shifts(indices, salt, reach), hashed_shifts(indices, salt + 1, reach)
            views.append(shift(images, dx, dy, spec.mode or self.mode))
        return views

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
        elif not isinstance(indices, Tensor) or indices.shape != (n,) or indices.is_floating_point():
            got = f"shape {tuple(indices.shape)} {indices.dtype}" if isinstance(indices, Tensor) else type(indices).__name__
            raise UsageError(f"indices must be the {n} samples' integer dataset indices, shape ({n},); got {got}")
        self._seen += n
        indices = indices.to(images.device)
        views = [images]
        for protocol in self.protocols:
            views += self._views(images, indices, protocol)
        offsets = self.curve_offsets or ()
        grid = [(dx, dy) for dy in offsets for dx in offsets]
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
        if self.curve_offsets is not None:
            side = len(self.curve_offsets)
            grid = counts[2 + k:].view(2, side, side)
            report.curve_agree, report.curve_correct, report.curve_samples = grid[0], grid[1], report.samples
            report.curve_offsets = self.curve_offsets
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
