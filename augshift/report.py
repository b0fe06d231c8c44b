"""What an evaluation counted, as percentages with intervals: `ConsistencyReport`, and the agreement of two
predictions per sample (`agreement_counts`, `consistency_from_predictions`), which the `evaluate`
module uses too."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor

from .errors import UsageError
from .intervals import proportion_ci


def agreement_counts(pred_a: Tensor, pred_b: Tensor, references: Optional[Tensor] = None) -> tuple[int, int, int]:
    """`(n, agreeing, correct)` for paired predictions (N,); `correct` counts `pred_a == references`.

    Examples:
        >>> import torch
        >>> agreement_counts(torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3]), torch.tensor([1, 2, 0]))
        (3, 2, 2)
    """
    if pred_a.shape != pred_b.shape or pred_a.dim() != 1:
        raise ValueError(f"predictions must both have shape (N,), got {tuple(pred_a.shape)} and {tuple(pred_b.shape)}")
    correct = int((pred_a == references).sum()) if references is not None else 0
    return pred_a.numel(), int((pred_a == pred_b).sum()), correct


def consistency_from_predictions(pred_a: Tensor, pred_b: Tensor) -> float:
    """Percent of samples whose two predictions (N,) agree.

    Examples:
        >>> import torch
        >>> consistency_from_predictions(torch.tensor([1, 2]), torch.tensor([1, 0]))
        50.0
    """
    n, agree, _ = agreement_counts(pred_a, pred_b)
    if n == 0:
        raise ValueError("no predictions: consistency of an empty set is undefined")
    return 100.0 * agree / n


@dataclass(repr=False)
class ConsistencyReport:
    """The counts of one evaluation (what `augshift.ShiftConsistency.compute` and
    `augshift.evaluate_shift_consistency` return); its properties and `to_dict` give them in percent (0 to 100).

    Units, per surface: this report, the command line (`augshift consistency`), augshift-timm's summary columns and
    the benchmark tables give accuracy and consistency in percent; the metrics logged by `AugShiftTrainer`
    (`eval_shift_consistency`), by `AugShiftCallback` (`val_shift_consistency`) and the `evaluate` module's results
    are rates in [0, 1], as the libraries' own accuracies are.

    Args:
        samples: how many images were evaluated (each counted once over all processes).
        correct: how many were classified correctly (the centre crop, with `crop_size`).
        agree: protocol -> how many images' two views got the same prediction (for a worst-case protocol: every
            view of its grid).
        robust: worst-case protocol -> how many images were correct under every offset of its grid.
        curve_agree: the per-shift curve's agreement counts, an (S, S) grid indexed
            `[offsets.index(dy), offsets.index(dx)]`, or `None`.
        curve_correct: the same grid of correct predictions, or `None`.
        curve_offsets: the S offsets per axis of the curve.
        outcomes: what was counted, per sample, by count name (`index` (N,) the dataset indices in increasing
            order; `correct`, `agree_<protocol>`, `robust_<worst protocol>` (N,) bool, row `i` of sample
            `index[i]`): what paired comparisons of two models on the same images need.

    Examples:
        >>> report = ConsistencyReport(samples=8, correct=6, agree={"random": 7})
        >>> report.accuracy, report.consistency("random")  # percentages
        (75.0, 87.5)
        >>> report.to_dict()["consistency_random_ci95"][0] < 87.5 < report.to_dict()["consistency_random_ci95"][1]
        True
        >>> report  # the rates and the sample count, not the per-sample outcomes
        ConsistencyReport(accuracy=75.00%, consistency={'random': 87.50%}, samples=8)
    """

    samples: int
    correct: int
    agree: dict
    robust: dict = field(default_factory=dict)
    curve_agree: Optional[Tensor] = None
    curve_correct: Optional[Tensor] = None
    curve_offsets: tuple = ()
    outcomes: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        """The percentages and the sample count: `ConsistencyReport(accuracy=91.20%, consistency={'random': 93.10%},
        samples=10000)`, with `worst_accuracy` for worst-case protocols; never the per-sample outcomes or the curve.

        Examples:
            >>> ConsistencyReport(samples=4, correct=3, agree={"random_worst": 2}, robust={"random_worst": 1})
            ConsistencyReport(accuracy=75.00%, consistency={'random_worst': 50.00%}, worst_accuracy={'random_worst': 25.00%}, samples=4)
            >>> ConsistencyReport(samples=0, correct=0, agree={})  # nothing evaluated: no percentages
            ConsistencyReport(samples=0)
        """
        if self.samples == 0:
            return "ConsistencyReport(samples=0)"

        def percents(counts: dict) -> str:
            return "{" + ", ".join(f"{name!r}: {self._percent(count):.2f}%" for name, count in counts.items()) + "}"

        parts = [f"accuracy={self.accuracy:.2f}%", f"consistency={percents(self.agree)}"]
        if self.robust:
            parts.append(f"worst_accuracy={percents(self.robust)}")
        return f"ConsistencyReport({', '.join(parts)}, samples={self.samples})"

    def _percent(self, count: int) -> float:
        if self.samples == 0:
            raise UsageError("no samples were evaluated (the data gave no batches): accuracy and consistency "
                             "are undefined; check the split and its size")
        return 100.0 * count / self.samples

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy in percent (of the centre crop, with `crop_size`).

        Examples:
            >>> ConsistencyReport(samples=4, correct=3, agree={}).accuracy
            75.0
        """
        return self._percent(self.correct)

    def consistency(self, protocol: str = "random") -> float:
        """The percent of images whose views agree under `protocol` (a name of `agree`).

        Examples:
            >>> ConsistencyReport(samples=4, correct=3, agree={"random": 2, "circular": 4}).consistency("circular")
            100.0
        """
        return self._percent(self.agree[protocol])

    def to_dict(self) -> dict:
        """JSON-ready: `accuracy`, `consistency_<protocol>`, `accuracy_<worst protocol>` (correct under every
        offset), each in percent with its `_ci95` Wilson interval (percent), and the curve.

        Examples:
            >>> result = ConsistencyReport(samples=4, correct=3, agree={"random": 2}).to_dict()
            >>> result["accuracy"], result["consistency_random"], [round(end, 1) for end in result["accuracy_ci95"]]
            (75.0, 50.0, [30.1, 95.4])
        """
        out = {"samples": self.samples, "accuracy": self.accuracy, "accuracy_ci95": proportion_ci(self.correct, self.samples)}
        for protocol, agree in self.agree.items():
            out[f"consistency_{protocol}"] = self._percent(agree)
            out[f"consistency_{protocol}_ci95"] = proportion_ci(agree, self.samples)
        for protocol, robust in self.robust.items():
            out[f"accuracy_{protocol}"] = self._percent(robust)
            out[f"accuracy_{protocol}_ci95"] = proportion_ci(robust, self.samples)
        if self.curve_agree is not None:
            scale = 100.0 / self.samples
            out["curve_offsets"] = list(self.curve_offsets)
            out["curve_consistency"] = (self.curve_agree.double() * scale).tolist()
            out["curve_accuracy"] = (self.curve_correct.double() * scale).tolist()
        return out
