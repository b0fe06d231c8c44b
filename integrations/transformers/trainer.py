"""AugShift in Hugging Face ``transformers.Trainer``: :class:`AugShiftTrainer`.

A ``Trainer`` whose ``compute_loss`` trains both shifted views of every batch in one forward with AugShift's
objective (:class:`~augshift.augshift.AugShiftObjective`: cross-entropy on both views plus ``weight`` times the
distance of their pooled features), and whose evaluation adds ``<prefix>_shift_consistency`` (the ``random``
protocol) and ``<prefix>_shift_consistency_<protocol>`` for the other protocols asked for to Trainer's metrics,
before they are logged and seen by callbacks (``metric_for_best_model="eval_shift_consistency"`` works). Everything
else is Trainer's: ``TrainingArguments`` are untouched.

Why cross-entropy and not the model's own loss head: a ``transformers`` image classifier computes its loss only
when called with ``labels``, for one batch; AugShift calls the model once on both views (2N images) without labels
and applies the criterion to the 2N logits, exactly as :class:`~augshift.AugShift` does, so the two give the same
loss on the same batch and shifts. It covers single-label classification (``problem_type`` unset or
``single_label_classification``, the image-classification default); ``TrainingArguments.label_smoothing_factor``
smooths it as Trainer would. Other problem types, and a ``compute_loss_func``, are refused rather than ignored.

The shifts are drawn from a generator re-seeded at every optimizer step from ``(args.seed, step, process)``, so a
resumed run replays them. The consistency counts are gathered over processes with ``gather_for_metrics`` (padding
duplicates dropped) and keyed by each sample's dataset index (the ``index`` column of
:func:`augshift.data.with_tensors`), so several processes report exactly the numbers of one.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn
from transformers import Trainer

from augshift.augshift import AugShiftObjective
from augshift.config import AugShiftConfig
from augshift.data import INDEX_COLUMN
from augshift.engine.seeding import stream_seed
from augshift.errors import UsageError
from augshift.features import PooledFeatures
from augshift.metrics import ShiftConsistency
from augshift.models import logits_of
from augshift.protocols import DEFAULT_PROTOCOLS, consistency_column

SHIFT_STREAM = 1  # the shifts' random stream, beside the step and the process
SINGLE_LABEL = (None, "single_label_classification")


class AugShiftTrainer(Trainer):
    """``transformers.Trainer`` with AugShift training and shift-consistency evaluation.

    Args:
        *args, **kwargs: those of ``transformers.Trainer`` (``model``, ``args``, datasets, ``processing_class``...).
        augshift: the AugShift options (default: the library defaults).
        protocols: the consistency protocols evaluated (:mod:`augshift.protocols`; default ``random``, ``circular``).
        max_shift: the range of the evaluation protocols' shifts (px); default: the range AugShift trains with
            (``augshift.reach``), as augshift-timm and the Accelerate example evaluate.
        crop_size: the model's input size when the evaluation images are larger (the ``crop`` protocol; the other
            protocols and the accuracy use the centre crop).
        classifier: the module whose input is the pooled feature, when it cannot be found (a ``transformers``
            classifier's is its ``classifier``).

    Batches are dicts with ``pixel_values`` (N, C, H, W) normalised floats and ``labels`` (N,); for exact evaluation
    with several processes, ``index`` (N,) dataset indices too.

    Usage::

        trainer = AugShiftTrainer(model=model, args=TrainingArguments("out", remove_unused_columns=False),
                                  train_dataset=train, eval_dataset=test, augshift=AugShiftConfig(max_shift=4))
        trainer.train()
        trainer.evaluate()["eval_shift_consistency"]

    Example:
        >>> import tempfile
        >>> from transformers import TrainingArguments, ViTConfig, ViTForImageClassification
        >>> model = ViTForImageClassification(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                                             intermediate_size=32, image_size=16, patch_size=8, num_labels=3))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> args = TrainingArguments(output_dir=tmp.name, report_to=[], use_cpu=True, remove_unused_columns=False)
        >>> trainer = AugShiftTrainer(model=model, args=args, augshift=AugShiftConfig(max_shift=2))
        >>> batch = {"pixel_values": torch.randn(2, 3, 16, 16), "labels": torch.tensor([0, 2])}
        >>> loss = trainer.compute_loss(model, batch)  # both shifted views, one forward
        >>> loss.shape, loss.requires_grad
        (torch.Size([]), True)
        >>> tmp.cleanup()
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean: Trainer divides it over accumulation steps

    def __init__(self, *args: Any, augshift: Optional[AugShiftConfig] = None,
                 protocols: Sequence[str] = DEFAULT_PROTOCOLS, max_shift: Optional[int] = None,
                 crop_size: Optional[int] = None, classifier: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.compute_loss_func is not None:
            raise UsageError("AugShiftTrainer computes the loss itself (cross-entropy on both shifted views plus the "
                             "consistency term): drop compute_loss_func, or use transformers.Trainer")
        problem = getattr(getattr(self.model, "config", None), "problem_type", None)
        if problem not in SINGLE_LABEL:
            raise UsageError(f"AugShiftTrainer trains single-label classification with cross-entropy; the model's "
                             f"config.problem_type is {problem!r}")
        self.shifts = torch.Generator()
        config = AugShiftConfig.resolve(augshift)
        self.objective = AugShiftObjective(
            config, generator=self.shifts, criterion=nn.CrossEntropyLoss(label_smoothing=self.args.label_smoothing_factor))
        self.pooled = PooledFeatures(self.model, classifier)
        self.consistency = dict(protocols=tuple(protocols), max_shift=config.reach if max_shift is None else max_shift,
                                crop_size=crop_size, seed=self.args.seed)
        ShiftConsistency(**self.consistency)  # refuses bad options now, not after training
        self._seeded_step: Optional[int] = None

    def compute_loss(self, model: nn.Module, inputs: dict, return_outputs: bool = False,
                     num_items_in_batch: Optional[Any] = None):
        """AugShift's loss of one training batch: both shifted views of ``inputs["pixel_values"]`` through ``model``
        in one forward, cross-entropy on both plus the consistency of their pooled features (in evaluation, the
        cross-entropy of the unshifted images, and their logits)."""
        if not model.training:  # Trainer's prediction_step: the plain loss and logits of the unshifted images
            logits = logits_of(model(inputs["pixel_values"]))
            loss = self.objective.criterion(logits, inputs["labels"])
            return (loss, {"logits": logits}) if return_outputs else loss
        step = self.state.global_step
        if step != self._seeded_step:  # re-seed at every optimizer step: a resumed run replays its shifts
            self.shifts.manual_seed(stream_seed(self.args.seed, SHIFT_STREAM, step, self.args.process_index))
            self._seeded_step = step
        result = self.objective(model, self.pooled, inputs["pixel_values"], inputs["labels"])
        if return_outputs:
            return result["loss"], {"logits": result["output"]}
        return result["loss"]

    def evaluation_loop(self, dataloader, description: str, prediction_loss_only: Optional[bool] = None,
                        ignore_keys: Optional[list[str]] = None, metric_key_prefix: str = "eval"):
        """Trainer's evaluation, plus ``<prefix>_shift_consistency[_<protocol>]`` (%) in its metrics."""
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        metric = ShiftConsistency(**self.consistency)
        model = self.model
        was_training = model.training
        model.eval()
        try:
            for batch in dataloader:
                if INDEX_COLUMN not in batch and self.args.world_size > 1:
                    raise UsageError(f"the evaluation batches have no {INDEX_COLUMN!r} (dataset indices): with several "
                                     "processes the shifts are keyed by them; build the dataset with "
                                     "augshift.data.with_tensors, or keep its index column (remove_unused_columns=False)")
                batch = self._prepare_inputs(batch)
                with self.autocast_smart_context_manager():
                    flags = metric.flags(model, batch["pixel_values"], batch["labels"], batch.get(INDEX_COLUMN))
                metric.add(self.accelerator.gather_for_metrics(flags))
        finally:
            model.train(was_training)
        report = metric.compute(sync=False)
        for protocol in metric.protocols:
            output.metrics[f"{metric_key_prefix}_{consistency_column(protocol)}"] = report.consistency(protocol)
        return output
