"""Shift consistency: how often a classifier predicts the same class for differently shifted views of an image.

`ShiftConsistency` evaluates any of the protocols of `augshift.protocols` (`random`, `circular`,
`crop`, `fractional`, `reflect`, ..., and each one's `_worst` case) plus, optionally, a per-shift curve:
agreement of each shift `(dx, dy)` on a grid of offsets with the unshifted prediction, and accuracy under each
shift. The protocols make the views (`Protocol`); this module only counts.

Outcomes are kept per sample, by name (`samples`, `correct`, `agree/<protocol>`, `correct/<worst protocol>`,
`curve_agree`, `curve_correct`), keyed by the sample's dataset index; `ShiftConsistency.compute` gathers
them from every process and counts each index once. Each sample's views depend only on `(seed, sample index,
protocol)`, so a data-parallel evaluation gives exactly the single-process numbers, whatever the sharding: a
distributed sampler's padding repeats, or flags gathered and then computed again, are the same indices and are not
counted twice. With several processes the indices are required (refused without them, before anything is counted).
Every percentage comes with a 95% Wilson interval. Forwards are shared: a grid offset that the curve and a worst
case both need is evaluated once.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor

from .augshift import AugShift
from .config import check_max_shift, check_mode
from .distributed import gather_objects, world_size
from .errors import UsageError
from .labels import check_labels
from .outputs import evaluating, logits_of
from .protocols import DEFAULT_PROTOCOLS, protocol_names, protocol_of
from .report import ConsistencyReport
from .progress import progress_bar
from .shifts import check_images
from .views import Geometry, Protocol, centre_crop, dense_offsets

__all__ = ["ShiftConsistency", "check_labels", "evaluate_shift_consistency"]

Flags = dict[str, Tensor]


SAMPLE_KEYS = ("index", "target", "fingerprint", "settings")  # what identifies a sample (and the metric's settings)
CURVE_PROTOCOL = "random"  # the per-shift curve's views: this protocol's shifts (the evaluator's mode) at fixed offsets


class ShiftConsistency:
    """Accumulate accuracy and shift consistency over batches; `compute` counts every sample of every process
    once.

    Under several processes (Accelerate, DDP, torchrun) the one way to evaluate is: on every process,
    `update` with the batch's dataset `indices`, then `compute` (a collective) -- no gathering by hand.

    Args:
        max_shift: range of the offsets of the protocols that name none of their own (`random`, `circular`,
            `fractional`, `reflect`; px per axis).
        mode: border of the `random*` protocols and of the curve (`zeros` = pad-and-crop).
        protocols: registered protocol names (`augshift.protocols`; each with `_worst` for its worst case).
        crop_size: the model's input size: images larger than it are centre-cropped for everything but `crop`,
            whose two views are random `crop_size` crops (needed by `crop` / `crop_worst`).
        curve_max_shift: also every shift on the dense grid `[-c, c]^2` ((2c+1)^2 forwards per image); or
        curve_offsets: the shifts `offsets x offsets` (e.g. `offsets_to`).
        seed: keys the random offsets (with each sample's dataset index).
        chunk_size: images per forward.

    Raises:
        UsageError: from `update` / `flags`, for labels outside `[0, K)` (`-1`: an unlabelled split)
            and for batches without `indices` under several processes; from `compute`, for one index given
            to two different images.

    Examples:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
        >>> metric = ShiftConsistency(protocols=("random", "circular_worst"))
        >>> metric.update(model, torch.randn(8, 3, 16, 16), torch.zeros(8, dtype=torch.long), torch.arange(8))
        >>> sorted(k for k in metric.compute().to_dict() if not k.endswith("ci95"))
        ['accuracy', 'accuracy_circular_worst', 'consistency_circular_worst', 'consistency_random', 'samples']
    """

    def __init__(
        self, *, max_shift: int = 4, mode: str = "zeros", protocols: Iterable[str] = DEFAULT_PROTOCOLS,
        crop_size: Optional[int] = None, curve_max_shift: Optional[int] = None,
        curve_offsets: Optional[Sequence[int]] = None, seed: int = 0, chunk_size: int = 1024,
    ) -> None:
        check_mode(mode)
        if not isinstance(max_shift, int) or isinstance(max_shift, bool):
            raise TypeError(f"max_shift must be an int (the same range on both axes), got {max_shift!r}")
        for name, value in (("seed", seed), ("chunk_size", chunk_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if chunk_size < 1:
            raise UsageError(f"chunk_size (images per forward) must be >= 1, got {chunk_size}")
        if isinstance(protocols, str):
            raise TypeError(f"protocols must be a sequence of names, e.g. ({protocols!r},), not the string {protocols!r}")
        check_max_shift(max_shift)
        self.protocols = tuple(dict.fromkeys(protocols))
        unknown = [p for p in self.protocols if p not in protocol_names()]
        if unknown:
            raise UsageError(f"unknown protocol(s) {unknown}; supported: {', '.join(protocol_names())}")
        self._resolved = {name: protocol_of(name) for name in self.protocols}
        if curve_max_shift is not None and curve_offsets is not None:
            raise UsageError("give curve_max_shift (a dense grid) or curve_offsets, not both")
        if curve_max_shift is not None:
            check_max_shift(curve_max_shift)
        crops = [name for name, (protocol, _) in self._resolved.items() if protocol.larger_images]
        if crops and crop_size is None:
            raise UsageError(f"the {crops[0]} protocol needs crop_size, the model's input size (--image-size), and "
                             "larger images (--crop-from)")
        if crop_size is not None and crop_size < 1:
            raise UsageError(f"crop_size must be >= 1, got {crop_size}")
        single = [name for name, (protocol, _) in self._resolved.items() if protocol.uses_max_shift and max_shift == 0]
        if single:
            raise UsageError(f"max_shift=0 gives the {', '.join(single)} protocol(s) two identical views (100 % by "
                             "construction): use a max_shift of at least 1")
        self.max_shift, self.mode, self.crop_size, self.seed, self.chunk_size = max_shift, mode, crop_size, seed, chunk_size
        self.curve_offsets = dense_offsets(curve_max_shift) if curve_max_shift is not None else (
            tuple(sorted(set(int(d) for d in curve_offsets))) if curve_offsets is not None else None)
        self._curve, _ = protocol_of(CURVE_PROTOCOL)
        self.settings = {"max_shift": max_shift, "mode": mode, "protocols": self.protocols, "crop_size": crop_size,
                         "seed": seed, "curve_offsets": self.curve_offsets}
        digest = hashlib.sha256(repr(sorted(self.settings.items())).encode()).hexdigest()
        self._settings_key = int(digest[:15], 16)  # travels with every sample's flags: only alike metrics merge
        self._seen = 0
        self.names = ("samples", "correct", *(f"agree/{p}" for p in self.protocols),
                      *(f"correct/{p}" for p, (_, worst) in self._resolved.items() if worst),
                      *(("curve_agree", "curve_correct") if self.curve_offsets is not None else ()))
        self._records: list[Flags] = []

    # ----------------------------------------------------------------------------------------- views

    def geometry(self, height: int, width: int) -> Geometry:
        """The `Geometry` of images of `height` x `width` (before any crop).

        Examples:
            >>> geometry = ShiftConsistency(max_shift=3, protocols=("crop",), crop_size=28).geometry(32, 32)
            >>> (geometry.height, geometry.width), geometry.source, geometry.max_shift  # evaluated at the crop
            ((28, 28), (32, 32), 3)
        """
        return Geometry.of(height, width, max_shift=self.max_shift, mode=self.mode, crop_size=self.crop_size)

    def pair_offsets(self, protocol: str, indices: Tensor, height: int, width: int) -> tuple[tuple[Tensor, Tensor], ...]:
        """The offsets of `protocol`'s two views of images `indices` (N,) of `height` x `width`:
        `((dx_a, dy_a), (dx_b, dy_b))` (see `augshift.protocols.pair_offsets`).

        Examples:
            >>> metric = ShiftConsistency(max_shift=2, seed=1)
            >>> (dx_a, dy_a), (dx_b, dy_b) = metric.pair_offsets("random", torch.arange(5), 16, 16)
            >>> dx_a.shape, bool(torch.stack([dx_a, dy_a, dx_b, dy_b]).abs().max() <= 2)
            (torch.Size([5]), True)
            >>> torch.equal(metric.pair_offsets("random", torch.arange(5), 16, 16)[0][0], dx_a)  # keyed by the index
            True
        """
        return protocol_of(protocol)[0].offsets(indices, self.geometry(height, width), seed=self.seed)

    def _check_sizes(self, geometry: Geometry) -> None:
        """Each protocol's own check of the sizes, then the curve's."""
        for protocol in dict.fromkeys(protocol for protocol, _ in self._resolved.values()):
            protocol.check(geometry)
        largest = max((abs(d) for d in self.curve_offsets or ()), default=0)
        if largest >= min(geometry.height, geometry.width):
            raise UsageError(f"the curve's shifts up to {largest} px do not fit images of H={geometry.height}, "
                             f"W={geometry.width}: use a smaller curve_max_shift (or curve_offsets)")

    def _predict(self, model: Callable, views: list[tuple[str, Callable[[], Tensor]]], n: int,
                 targets: Tensor) -> dict[str, Tensor]:
        """Predictions (N,) of each named view, the views built lazily and packed into forwards of `chunk_size`
        (views of one size together: a protocol's view may change the image size); the logits are checked to be
        (N, K >= 2) and finite, and `targets` against the model's classes, at the first forward."""
        per = max(1, self.chunk_size // n)
        preds: dict[str, Tensor] = {}
        for start in range(0, len(views), per):
            made = [(name, make()) for name, make in views[start:start + per]]
            for shape in dict.fromkeys(view.shape for _, view in made):
                pack = [(name, view) for name, view in made if view.shape == shape]
                batch = torch.cat([view for _, view in pack])
                logits = torch.cat([self._logits(model, part) for part in batch.split(self.chunk_size)])
                if not preds:
                    check_labels(targets, logits.shape[1])
                preds.update(zip((name for name, _ in pack), logits.argmax(dim=1).split(n)))
        return preds

    @staticmethod
    def _logits(model: Callable, images: Tensor) -> Tensor:
        """The model's logits of `images` (M, C, H, W): (M, K) with K >= 2, finite, or a one-line refusal."""
        logits = logits_of(model(images))
        if logits.dim() != 2 or logits.shape[0] != images.shape[0]:
            raise UsageError(f"the model returned {tuple(logits.shape)} for {images.shape[0]} images, not class logits "
                             f"({images.shape[0]}, K): shift consistency scores classifiers (for a segmenter, use "
                             "augshift attack / segmentation_scores)")
        if logits.shape[1] < 2:
            raise UsageError("the model has a single output column: its argmax is class 0 for every view, so accuracy "
                             "and consistency would be 100 % by construction; score a classifier with K >= 2 logits")
        if not bool(torch.isfinite(logits).all()):  # argmax of NaN logits is class 0 for every view: "consistent"
            raise UsageError("the model returned non-finite logits (NaN or inf): its predictions, and so its shift "
                             "consistency, are undefined; check the weights (a diverged run?) and the inputs "
                             "(their normalisation: a tiny --std overflows)")
        return logits

    # ----------------------------------------------------------------------------------------- counting

    @torch.no_grad()
    def flags(self, model: Callable, images: Tensor, targets: Tensor, indices: Optional[Tensor] = None) -> Flags:
        """Per-sample 0/1 outcomes for `images` (N, C, H, W) and class `targets` (N,), by name.

        Args:
            model: the classifier (the model AugShift wraps, not the `AugShift` module); evaluated in eval mode,
                its own mode restored afterwards, so its BatchNorm statistics never change.
            images: the batch (N, C, H, W), normalised floats.
            targets: class indices (N,) in `[0, K)`.
            indices: the samples' dataset indices (N,); required under several processes. Without them (one
                process) samples are numbered in the order they come.

        Returns:
            `{"samples": (N,), "correct": (N,), "agree/<protocol>": (N,), "correct/<worst protocol>": (N,),
            "curve_agree": (N, S, S), "curve_correct": (N, S, S)}` (0/1, long) and what identifies each sample:
            `index` (N,), `target` (N,) and `fingerprint` (N,) (the sum of its pixels). `add` them,
            or call `update`, which does both.

        Examples:
            >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))  # blind to rolls
            >>> metric = ShiftConsistency(protocols=("circular",))
            >>> flags = metric.flags(model, torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), torch.arange(4))
            >>> flags["samples"].tolist(), flags["agree/circular"].tolist()
            ([1, 1, 1, 1], [1, 1, 1, 1])
        """
        if isinstance(model, AugShift):
            raise UsageError("ShiftConsistency evaluates a classifier: pass the model you wrapped (augshift.model), "
                             "not the AugShift module, whose forward trains on (images, targets)")
        check_images(images, "images", floating=True)
        n = images.shape[0]
        if not isinstance(targets, Tensor) or targets.shape != (n,) or targets.is_floating_point():
            got = f"{tuple(targets.shape)} {targets.dtype}" if isinstance(targets, Tensor) else type(targets).__name__
            raise ValueError(f"targets must be class indices of shape ({n},), got {got}")
        geometry = self.geometry(*images.shape[-2:])
        self._check_sizes(geometry)
        if indices is None and world_size() > 1:
            raise UsageError(f"{world_size()} processes evaluate, but the batch has no dataset indices: pass each "
                             "sample's index (update(model, images, targets, indices)) -- the views are keyed by it "
                             "and repeated samples are counted once by it; add it to your dataset's items, e.g. "
                             "'index': idx in __getitem__")
        if indices is None:
            indices = torch.arange(self._seen, self._seen + n)
        elif not isinstance(indices, Tensor) or indices.shape != (n,) or indices.is_floating_point():
            got = f"shape {tuple(indices.shape)} {indices.dtype}" if isinstance(indices, Tensor) else type(indices).__name__
            raise UsageError(f"indices must be the {n} samples' integer dataset indices, shape ({n},); got {got}")
        self._seen += n
        indices = indices.to(images.device)
        base = centre_crop(images, geometry)
        views: dict[str, Callable[[], Tensor]] = {"base": lambda: base}

        def need(protocol: Protocol, dx, dy) -> str:
            """The key of a view (built once however many protocols need it; the unshifted view is `base`)."""
            key = f"pair{len(views)}" if isinstance(dx, Tensor) else protocol.key(dx, dy, geometry)
            if key is None:
                return "base"
            views.setdefault(key, lambda: protocol.view(images, base, dx, dy, geometry))
            return key

        plan: dict[str, list[str]] = {}
        for name, (protocol, worst) in self._resolved.items():
            if worst:
                grid = protocol.grid(geometry)
                offsets = [(dx, dy) for dy in grid for dx in grid]
            else:
                offsets = protocol.offsets(indices, geometry, seed=self.seed)
            plan[name] = [need(protocol, dx, dy) for dx, dy in offsets]
        offsets = self.curve_offsets or ()
        curve = [need(self._curve, dx, dy) for dy in offsets for dx in offsets]
        with evaluating(model):
            preds = self._predict(model, list(views.items()), n, targets)
        targets = targets.to(preds["base"].device)
        reference = preds["base"]
        out: Flags = {"index": indices.long(), "target": targets.long(),
                      "fingerprint": images.detach().double().flatten(1).sum(1),
                      "settings": torch.full_like(targets, self._settings_key, dtype=torch.long),
                      "samples": torch.ones_like(targets), "correct": (reference == targets).long()}
        for name, keys in plan.items():
            stack = torch.stack([preds[k] for k in keys])
            if self._resolved[name][1]:
                out[f"agree/{name}"] = (stack == reference).all(0).long()
                out[f"correct/{name}"] = (stack == targets).all(0).long()
            else:
                out[f"agree/{name}"] = (stack[0] == stack[1]).long()
        if offsets:
            grid = torch.stack([preds[k] for k in curve]).view(len(offsets), len(offsets), n).permute(2, 0, 1)
            out["curve_agree"] = (grid == reference.view(n, 1, 1)).long()
            out["curve_correct"] = (grid == targets.view(n, 1, 1)).long()
        return out

    def add(self, flags: Flags) -> None:
        """Add per-sample outcomes from `flags` (any number of rows, gathered ones too: a sample's index is
        counted once however often it is added).

        Examples:
            >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
            >>> metric = ShiftConsistency(protocols=("random",))
            >>> flags = metric.flags(model, torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), torch.arange(4))
            >>> metric.add(flags)
            >>> metric.add(flags)  # the same four images again (a sampler's padding, a second gather)
            >>> metric.compute().samples
            4
        """
        if not isinstance(flags, dict):
            raise TypeError(f"flags must be the dict that ShiftConsistency.flags returns, got {type(flags).__name__}")
        expected = set(self.names) | set(SAMPLE_KEYS)
        if set(flags) != expected or bool((flags["settings"] != self._settings_key).any()):
            raise UsageError(f"these flags come from a ShiftConsistency made with other settings than this one's "
                             f"({', '.join(f'{k}={v}' for k, v in self.settings.items())}): merge only metrics made "
                             "alike")
        self._records.append({name: values.detach().cpu() for name, values in flags.items()})

    def update(self, model: Callable, images: Tensor, targets: Tensor, indices: Optional[Tensor] = None) -> None:
        """Evaluate `model` (in eval mode, its mode restored after) on one batch and add its outcomes (see
        `flags`).

        Examples:
            >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).train()
            >>> metric = ShiftConsistency(protocols=("circular",))
            >>> for start in (0, 4):  # two batches, each with its dataset indices
            ...     metric.update(model, torch.randn(4, 3, 8, 8), torch.ones(4, dtype=torch.long), torch.arange(start, start + 4))
            >>> metric.compute().samples, model.training  # the model's mode restored
            (8, True)
        """
        self.add(self.flags(model, images, targets, indices))

    def _samples(self) -> Flags:
        """Every process's records (a collective under several processes), one row per dataset index."""
        local = {name: torch.cat([r[name] for r in self._records]) if self._records else torch.zeros(0)
                 for name in (*SAMPLE_KEYS, *self.names)}
        parts = gather_objects(local)
        rows = {name: torch.cat([part[name] for part in parts if len(part["index"])] or [local[name]])
                for name in local}
        if not len(rows["index"]):
            return rows
        order = torch.argsort(rows["index"], stable=True)
        index = rows["index"][order]
        first = torch.ones_like(index, dtype=torch.bool)
        first[1:] = index[1:] != index[:-1]
        group = torch.cumsum(first, 0) - 1  # each row's position among the distinct indices
        for key in ("fingerprint", "target"):
            values = rows[key][order]
            differ = ~torch.isclose(values.double(), values[first].double()[group], rtol=1e-6, atol=1e-6)
            if bool(differ.any()):
                raise UsageError(f"dataset index {int(index[differ][0])} was given to two different samples (another "
                                 f"{key}): indices must identify samples (the dataset's own index, not a position in "
                                 "the batch)")
        return {name: values[order][first] for name, values in rows.items()}

    def compute(self) -> ConsistencyReport:
        """The report over every sample every process added, each dataset index counted once.

        Under several processes this is a collective: call it on every process (each gets the same report).

        Examples:
            >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
            >>> metric = ShiftConsistency(protocols=("circular",))
            >>> metric.update(model, torch.randn(6, 3, 8, 8), torch.zeros(6, dtype=torch.long), torch.arange(6))
            >>> report = metric.compute()
            >>> report.consistency("circular"), report.samples  # percent: pooling is blind to circular shifts
            (100.0, 6)
        """
        rows = self._samples()
        counts = {name: rows[name].long().sum(dim=0) for name in self.names}
        report = ConsistencyReport(
            samples=int(counts["samples"]), correct=int(counts["correct"]),
            agree={p: int(counts[f"agree/{p}"]) for p in self.protocols},
            robust={p: int(counts[f"correct/{p}"]) for p, (_, worst) in self._resolved.items() if worst},
            outcomes={"index": rows["index"].long(), "correct": rows["correct"].bool(),
                      **{f"agree_{p}": rows[f"agree/{p}"].bool() for p in self.protocols},
                      **{f"robust_{p}": rows[f"correct/{p}"].bool()
                         for p, (_, worst) in self._resolved.items() if worst}},
        )
        if self.curve_offsets is not None and report.samples:
            side = len(self.curve_offsets)
            report.curve_agree, report.curve_correct = (counts[name].reshape(side, side)
                                                         for name in ("curve_agree", "curve_correct"))
            report.curve_offsets = self.curve_offsets
        return report


def evaluate_shift_consistency(
    model: torch.nn.Module, batches: Iterable, *, device: Optional[torch.device] = None, progress: bool = False,
    **options,
) -> ConsistencyReport:
    """Evaluate `model` over `batches` of `(images, targets)` or `(images, targets, indices)`.

    Args:
        model: the classifier; put in eval mode for the pass, its previous mode restored after.
        batches: an iterable of `(images (B, C, H, W) float, targets (B,))`, optionally with dataset indices (B,).
        device: where to evaluate (default: the model's).
        progress: show a progress bar.
        **options: those of `ShiftConsistency`.

    Returns:
        The `ConsistencyReport`.

    Examples:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
        >>> batches = [(torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), torch.arange(4))]
        >>> evaluate_shift_consistency(model, batches, max_shift=2).consistency("circular")  # pooling ignores rolls
        100.0
    """

    metric = ShiftConsistency(**options)
    device = device or next(model.parameters()).device
    for batch in progress_bar(batches, desc="shift consistency", enabled=progress):
        images, targets, *rest = batch
        indices = rest[0] if rest else None
        metric.update(model, images.to(device), targets.to(device), indices)  # in eval mode, its own mode restored
    return metric.compute()
