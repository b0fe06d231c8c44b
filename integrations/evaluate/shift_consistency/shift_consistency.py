"""Shift consistency as a Hugging Face `evaluate` metric.

Load it from its folder (no network): `evaluate.load(augshift.integrations.evaluate.METRIC_PATH)` for pairs of
views, `evaluate.load(METRIC_PATH, "worst")` for the worst case over a grid of views. The numbers come from
`augshift.metrics` (`consistency_from_predictions`, `agreement_counts`, `proportion_ci`), the same functions
as the rest of augshift; `protocol=` names the protocol of `augshift.protocols` the views were made with.
Results are rates in [0, 1], as `evaluate`'s `accuracy` reports them (`augshift.ConsistencyReport`, the command line
and the benchmark tables give percent).
"""
import math
import numbers

import datasets
import evaluate
import torch

from augshift.intervals import proportion_ci
from augshift.report import agreement_counts, consistency_from_predictions
from augshift.protocols import pair_protocols, protocol_names, worst_protocols

PAIR, WORST = "pair", "worst"  # the module's configurations

_DESCRIPTION = """
Shift consistency: the rate (in [0, 1]) of images for which a classifier predicts the same class for two
shifted views of the image (Zhang, ICML 2019). `predictions` are the classes predicted for the first
view (for example the unshifted image), `shifted_predictions` those for the second view. With
`references`, it also reports the accuracy (a rate in [0, 1]) of `predictions`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): class predicted for the first view of each image (for "worst": the unshifted one).
    shifted_predictions (`list` of `int`): class predicted for the second (shifted) view of each image; with the
        "worst" configuration, a list per image: the classes predicted for every offset of the grid.
    references (`list` of `int`, *optional*): true class of each image.
    protocol (`str`, *optional*, to `compute`): the augshift protocol the views were made with (e.g. "random",
        "crop", "fractional"; "random_worst", ... with "worst"), returned as `protocol`.

Returns:
    consistency (`float`): the rate of images whose predictions agree (all of them, with "worst"), in [0, 1].
    consistency_ci95 (`list` of two `float`): its Wilson 95% confidence interval (rates in [0, 1]).
    samples (`int`): number of images.
    accuracy (`float`): the rate of `predictions` equal to `references` (only with `references`); with "worst",
        the rate of images predicted correctly for every view.
    accuracy_ci95 (`list` of two `float`): its Wilson 95% confidence interval (only with `references`).
    protocol (`str`): the protocol named, when one was.

Examples:
    >>> metric = evaluate.load(METRIC_PATH)
    >>> results = metric.compute(predictions=[0, 1, 2, 3], shifted_predictions=[0, 1, 2, 0], references=[0, 1, 1, 3])
    >>> results["consistency"], results["accuracy"]
    (0.75, 0.75)
"""

_CITATION = """
@inproceedings{zhang2019shiftinvar,
  title={Making Convolutional Networks Shift-Invariant Again},
  author={Zhang, Richard},
  booktitle={ICML},
  year={2019}
}
@inproceedings{islam2021global,
  title={Global Pooling, More than Meets the Eye: Position Information is Encoded Channel-Wise in CNNs},
  author={Islam, Md Amirul and Kowal, Matthew and Jia, Sen and Derpanis, Konstantinos G and Bruce, Neil D B},
  booktitle={ICCV},
  year={2021}
}
"""


def _fractions(interval: tuple[float, float]) -> list[float]:
    """A percent interval as rates in [0, 1]."""
    return [bound / 100.0 for bound in interval]


def _check_class_indices(name: str, values) -> None:
    """Refuse what is not a class index (a whole number >= 0): `datasets` would truncate 1.5 to 1 and count it."""
    for value in values if values is not None else ():
        if value is None:
            continue
        if isinstance(value, (list, tuple)) or (hasattr(value, "ndim") and value.ndim == 1):
            _check_class_indices(name, value)
            continue
        number = value.item() if hasattr(value, "item") else value
        whole = isinstance(number, numbers.Integral) or (isinstance(number, float) and math.isfinite(number)
                                                         and number.is_integer())
        if isinstance(number, bool) or not whole or number < 0:
            raise ValueError(f"{name} must be class indices (whole numbers >= 0), got {value!r}: pass the argmax of "
                             "the logits (e.g. logits.argmax(-1)), and leave unlabelled (-1) images out")


def _nulls_for_missing(predictions, references):
    """`references=None` becomes a column of nulls, so that references stay optional."""
    return [None] * len(predictions) if references is None and predictions is not None else references


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ShiftConsistency(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in ("default", PAIR, WORST):
            raise ValueError(f"unknown configuration {self.config_name!r}: load the module as it is (pairs of views) "
                             f"or with {WORST!r} (a grid of views per image)")
        views = datasets.Sequence(datasets.Value("int64")) if self.config_name == WORST else datasets.Value("int64")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "shifted_predictions": views,
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/1904.11486", "https://arxiv.org/abs/2108.07884"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs) -> None:
        """Add a batch of `predictions`, `shifted_predictions` and (optional) `references`."""
        for name, values in (("predictions", predictions), ("shifted_predictions", kwargs.get("shifted_predictions")),
                             ("references", references)):
            _check_class_indices(name, values)
        super().add_batch(predictions=predictions, references=_nulls_for_missing(predictions, references), **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs) -> None:
        """Add one image's `prediction`, `shifted_prediction` and (optional) `reference`."""
        for name, value in (("prediction", prediction), ("shifted_prediction", kwargs.get("shifted_prediction")),
                            ("reference", reference)):
            _check_class_indices(name, [value])
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, shifted_predictions, references, protocol=None) -> dict:
        worst = self.config_name == WORST
        allowed = worst_protocols() if worst else pair_protocols()
        if protocol is not None and protocol not in allowed:
            raise ValueError(f"protocol {protocol!r} is not one of {', '.join(allowed)} (known: {', '.join(protocol_names())})"
                             f"{'; load the module with the worst configuration for _worst protocols' if not worst else ''}")
        pred_a = torch.as_tensor(predictions)
        if worst:  # an image counts only if every view agrees with (and, for accuracy, every view is) its class
            views = [torch.as_tensor(row) for row in shifted_predictions]
            if any(len(row) == 0 for row in views):
                raise ValueError("every image needs the predictions of at least one view of the grid")
            pred_b = torch.stack([torch.where((row == a).all(), a, -1 - a) for a, row in zip(pred_a, views)]) \
                if views else pred_a
        else:
            pred_b = torch.as_tensor(shifted_predictions)
        n, agree, _ = agreement_counts(pred_a, pred_b)
        result = {
            "consistency": agree / n if n else consistency_from_predictions(pred_a, pred_b),
            "consistency_ci95": _fractions(proportion_ci(agree, n)),
            "samples": n,
        }
        if protocol is not None:
            result["protocol"] = protocol
        given = [r is not None for r in references]
        if any(given) and not all(given):
            raise ValueError(f"references were given for {sum(given)} of {n} samples; give them for all or none")
        if all(given) and n:
            # with "worst", an image is correct only if its first view and every other view are: pred_b is pred_a
            # exactly where all views agree, so correct-and-consistent counts the images right under every view
            refs = torch.as_tensor(references)
            correct = int(((pred_a == refs) & (pred_b == refs)).sum()) if worst else agreement_counts(pred_a, pred_b, refs)[2]
            result.update(accuracy=correct / n, accuracy_ci95=_fractions(proportion_ci(correct, n)))
        return result
