"""Shift consistency as a Hugging Face ``evaluate`` metric.

Load it from its folder (no network): ``evaluate.load(augshift.integrations.evaluate.METRIC_PATH)``.
The numbers come from :mod:`augshift.metrics` (``consistency_from_predictions``, ``agreement_counts``,
``proportion_ci``), the same functions as the rest of augshift.
"""
import datasets
import evaluate
import torch

from augshift.metrics import agreement_counts, consistency_from_predictions, proportion_ci

_DESCRIPTION = """
Shift consistency: the percentage of images for which a classifier predicts the same class for two
shifted views of the image (Zhang, ICML 2019). `predictions` are the classes predicted for the first
view (for example the unshifted image), `shifted_predictions` those for the second view. With
`references`, it also reports the accuracy (percent) of `predictions`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): class predicted for the first view of each image.
    shifted_predictions (`list` of `int`): class predicted for the second (shifted) view of each image.
    references (`list` of `int`, *optional*): true class of each image.

Returns:
    consistency (`float`): percent of images whose two predictions agree, 0 to 100.
    consistency_ci95 (`list` of two `float`): its Wilson 95% confidence interval (percent).
    samples (`int`): number of images.
    accuracy (`float`): percent of `predictions` equal to `references` (only with `references`).
    accuracy_ci95 (`list` of two `float`): its Wilson 95% confidence interval (only with `references`).

Examples:
    >>> metric = evaluate.load(METRIC_PATH)
    >>> results = metric.compute(predictions=[0, 1, 2, 3], shifted_predictions=[0, 1, 2, 0], references=[0, 1, 1, 3])
    >>> results["consistency"], results["accuracy"]
    (75.0, 75.0)
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


def _nulls_for_missing(predictions, references):
    """``references=None`` becomes a column of nulls, so that references stay optional."""
    return [None] * len(predictions) if references is None and predictions is not None else references


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ShiftConsistency(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "shifted_predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/1904.11486", "https://arxiv.org/abs/2108.07884"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs) -> None:
        """Add a batch of ``predictions``, ``shifted_predictions`` and (optional) ``references``."""
        super().add_batch(predictions=predictions, references=_nulls_for_missing(predictions, references), **kwargs)

    def _compute(self, predictions, shifted_predictions, references) -> dict:
        pred_a, pred_b = torch.as_tensor(predictions), torch.as_tensor(shifted_predictions)
        n, agree, _ = agreement_counts(pred_a, pred_b)
        result = {
            "consistency": consistency_from_predictions(pred_a, pred_b),
            "consistency_ci95": list(proportion_ci(agree, n)),
            "samples": n,
        }
        given = [r is not None for r in references]
        if any(given) and not all(given):
            raise ValueError(f"references were given for {sum(given)} of {n} samples; give them for all or none")
        if all(given) and n:
            _, _, correct = agreement_counts(pred_a, pred_b, torch.as_tensor(references))
            result.update(accuracy=100.0 * correct / n, accuracy_ci95=list(proportion_ci(correct, n)))
        return result
