"""AugShift in Hugging Face `transformers.Trainer`: `AugShiftTrainer`.

A `transformers.Trainer` whose `compute_loss` trains both shifted views of every batch in one forward with AugShift's
objective (`AugShiftObjective`: cross-entropy on both views plus `weight` times the
distance of their pooled features), and whose evaluation adds `<prefix>_shift_consistency` (the `random`
protocol) and `<prefix>_shift_consistency_<protocol>` for the other protocols asked for to Trainer's metrics,
before they are logged and seen by callbacks (`metric_for_best_model="eval_shift_consistency"` works). They are
rates in [0, 1], like `eval_accuracy` from `evaluate`'s accuracy. Everything else is Trainer's:
`TrainingArguments`, datasets and collators are untouched, so replacing `transformers.Trainer` by `AugShiftTrainer` in a
script (transformers' own `run_image_classification.py`) is the whole change, on any number of processes.

Why cross-entropy and not the model's own loss head: a `transformers` image classifier computes its loss only
when called with `labels`, for one batch; AugShift calls the model once on both views (2N images) without labels
and applies the criterion to the 2N logits, exactly as `AugShift` does, so the two give the same
loss on the same batch and shifts. It covers single-label classification (`problem_type` unset or
`single_label_classification`; unset, it is recorded as `single_label_classification` in the config, as the
model's own loss would record it); `TrainingArguments.label_smoothing_factor` smooths it as Trainer would. Other
problem types, one label, and a `compute_loss_func` are refused when the trainer is built.

The shifts are drawn from a generator re-seeded at every optimizer step from `(args.seed, step, process)`, so a
resumed run replays them. The consistency pass numbers the evaluation dataset's samples itself (each item paired
with its position, the batch collated by the script's own collator), keys every sample's views by that number and
counts each once over all processes, so several processes report exactly the numbers of one. Several processes need
a map-style evaluation dataset (one with a length and indexing), checked when the trainer is built.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset
from transformers import Trainer

from augshift.augshift import AugShiftObjective
from augshift.config import AugShiftConfig
from augshift.data.hub import INDEX_COLUMN
from augshift.distributed import broadcast_buffers
from augshift.seeding import Stream, stream_seed
from augshift.errors import UsageError
from augshift.features import PooledFeatures
from augshift.metrics import ShiftConsistency
from augshift import logits_of
from augshift.protocols import DEFAULT_PROTOCOLS, consistency_column

SINGLE_LABEL = (None, "single_label_classification")


def _numbered(dataset: Any) -> bool:
    """Whether `dataset` can be numbered: map-style, with a length and indexing."""
    return (not isinstance(dataset, IterableDataset) and hasattr(dataset, "__len__")
            and hasattr(dataset, "__getitem__"))


class _Numbered(Dataset):
    """`dataset`'s items paired with their positions: `(item, i)`."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.dataset[i], i


class _WithIndex:
    """A collator of `(item, i)` pairs: the script's own collator on the items, plus `index` (N,)."""

    def __init__(self, collate) -> None:
        self.collate = collate

    def __call__(self, examples: list) -> dict:
        batch = self.collate([item for item, _ in examples])
        batch[INDEX_COLUMN] = torch.tensor([i for _, i in examples])
        return batch


class AugShiftTrainer(Trainer):
    """`transformers.Trainer` with AugShift training and shift-consistency evaluation.

    Args:
        *args: those of `transformers.Trainer` (`model`, `args`, datasets, `processing_class`...).
        **kwargs: the same, by name.
        augshift: the AugShift options (default: the library defaults).
        protocols: the consistency protocols evaluated (`augshift.protocols`; default `random`, `circular`).
        max_shift: the range of the evaluation protocols' shifts (px); default: the range AugShift trains with
            (`augshift.reach`), as augshift-timm and the Accelerate example evaluate.
        crop_size: the model's input size when the evaluation images are larger (the `crop` protocol; the other
            protocols and the accuracy use the centre crop).
        classifier: the module whose input is the pooled feature, when it cannot be found (a `transformers`
            classifier's is its `classifier`).

    Batches are dicts with `pixel_values` (N, C, H, W) normalised floats and `labels` (N,), as the script's
    collator builds them.

    As `transformers.Trainer`, with the AugShift options:

    ```python
    trainer = AugShiftTrainer(model=model, args=TrainingArguments("out", remove_unused_columns=False),
                              train_dataset=train, eval_dataset=test, augshift=AugShiftConfig(max_shift=4))
    trainer.train()
    trainer.evaluate()["eval_shift_consistency"]  # a rate in [0, 1]
    ```

    Examples:
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

    # compute_loss returns a per-batch mean, which Trainer must divide over the accumulation steps: newer releases read
    # loss_is_scaled_for_ga; the earlier ones divide only for a model that takes no loss kwargs (set in __init__)
    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, augshift: Optional[AugShiftConfig] = None,
                 protocols: Sequence[str] = DEFAULT_PROTOCOLS, max_shift: Optional[int] = None,
                 crop_size: Optional[int] = None, classifier: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # the loss is not the model's: see loss_is_scaled_for_ga
        if self.compute_loss_func is not None:
            raise UsageError("AugShiftTrainer computes the loss itself (cross-entropy on both shifted views plus the "
                             "consistency term): drop compute_loss_func, or use transformers.Trainer")
        config = getattr(self.model, "config", None)
        problem = getattr(config, "problem_type", None)
        if problem not in SINGLE_LABEL or getattr(config, "num_labels", 2) < 2:
            raise UsageError(f"AugShiftTrainer trains single-label classification with cross-entropy; the model's "
                             f"config has problem_type {problem!r} and num_labels {getattr(config, 'num_labels', None)}")
        if config is not None:
            config.problem_type = "single_label_classification"  # what the model's own loss records at its first step
        evaluated = self.eval_dataset.values() if isinstance(self.eval_dataset, dict) else [self.eval_dataset]
        if self.args.world_size > 1 and not all(d is None or _numbered(d) for d in evaluated):
            raise UsageError(f"shift consistency over {self.args.world_size} processes numbers the evaluation samples "
                             "to count each once: give a map-style eval_dataset (with a length and indexing), not an "
                             "iterable one, or evaluate on one process")
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
        """AugShift's loss of one training batch: both shifted views of `inputs["pixel_values"]` through `model`
        in one forward, cross-entropy on both plus the consistency of their pooled features (in evaluation, the
        cross-entropy of the unshifted images, and their logits).

        Examples:
            >>> import tempfile
            >>> from transformers import TrainingArguments, ViTConfig, ViTForImageClassification
            >>> model = ViTForImageClassification(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                                             intermediate_size=32, image_size=16, patch_size=8, num_labels=3))
            >>> tmp = tempfile.TemporaryDirectory()
            >>> args = TrainingArguments(output_dir=tmp.name, report_to=[], use_cpu=True, remove_unused_columns=False)
            >>> trainer = AugShiftTrainer(model=model, args=args)
            >>> batch = {"pixel_values": torch.randn(2, 3, 16, 16), "labels": torch.tensor([0, 2])}
            >>> _ = model.eval()
            >>> loss, outputs = trainer.compute_loss(model, batch, return_outputs=True)  # evaluation: unshifted
            >>> torch.allclose(outputs["logits"], model(batch["pixel_values"]).logits)
            True
            >>> tmp.cleanup()
        """
        if "labels" not in inputs:
            self._refuse_unlabelled(inputs, "training" if model.training else "evaluation")
        if not model.training:  # Trainer's prediction_step: the plain loss and logits of the unshifted images
            logits = logits_of(model(inputs["pixel_values"]))
            loss = self.objective.criterion(logits, inputs["labels"])
            return (loss, {"logits": logits}) if return_outputs else loss
        step = self.state.global_step
        if step != self._seeded_step:  # re-seed at every optimizer step: a resumed run replays its shifts
            self.shifts.manual_seed(stream_seed(self.args.seed, Stream.SHIFT, step, self.args.process_index))
            self._seeded_step = step
        result = self.objective(model, self.pooled, inputs["pixel_values"], inputs["labels"])
        if return_outputs:
            return result["loss"], {"logits": result["output"]}
        return result["loss"]

    @staticmethod
    def _refuse_unlabelled(item: dict, what: str) -> None:
        raise UsageError(f"AugShiftTrainer scores class labels, and this batch has none (keys: "
                         f"{', '.join(map(str, item))}): give {what} data with a 'labels' column (the script's "
                         "label column renamed to labels)")

    def evaluation_loop(self, dataloader, description: str, prediction_loss_only: Optional[bool] = None,
                        ignore_keys: Optional[list[str]] = None, metric_key_prefix: str = "eval"):
        """Trainer's evaluation, plus `<prefix>_shift_consistency[_<protocol>]` (rates in [0, 1]) in its metrics.
        Every process first takes rank 0's buffers (BatchNorm statistics), so all evaluate the model rank 0 saves.

        Examples:
            >>> import tempfile
            >>> from transformers import TrainingArguments, ViTConfig, ViTForImageClassification
            >>> model = ViTForImageClassification(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                                             intermediate_size=32, image_size=16, patch_size=8, num_labels=3))
            >>> tmp = tempfile.TemporaryDirectory()
            >>> args = TrainingArguments(output_dir=tmp.name, report_to=[], use_cpu=True, remove_unused_columns=False)
            >>> data = [{"pixel_values": torch.randn(3, 16, 16), "labels": i % 3} for i in range(4)]
            >>> trainer = AugShiftTrainer(model=model, args=args, eval_dataset=data, max_shift=2,
            ...                           protocols=("random", "circular"))
            >>> metrics = trainer.evaluate()  # Trainer's evaluate runs this loop
            >>> [0 <= metrics[name] <= 1 for name in ("eval_shift_consistency", "eval_shift_consistency_circular")]
            [True, True]
            >>> tmp.cleanup()
        """
        dataset = getattr(dataloader, "dataset", None)
        if _numbered(dataset) and len(dataset):  # what the collator makes of one item, before Trainer's evaluation
            first = dataloader.collate_fn([dataset[0]]) if dataloader.collate_fn is not None else dataset[0]
            if isinstance(first, dict) and "labels" not in first:
                self._refuse_unlabelled(first, "evaluation")
        broadcast_buffers(self.model)
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        metric = ShiftConsistency(**self.consistency)
        for batch in self._numbered_batches(dataloader):
            batch = self._prepare_inputs(batch)
            with self.autocast_smart_context_manager():  # ShiftConsistency evaluates in eval mode, restores the mode
                metric.update(self.model, batch["pixel_values"], batch["labels"], batch.get(INDEX_COLUMN))
        report = metric.compute()
        for protocol in metric.protocols:
            output.metrics[f"{metric_key_prefix}_{consistency_column(protocol)}"] = report.agree[protocol] / report.samples
        return output

    def _numbered_batches(self, dataloader):
        """The evaluation batches with `index`: the dataset Trainer evaluates, numbered, collated by its collator
        and sharded over the processes as Trainer shards; an iterable dataset (one process) as it comes."""
        dataset = getattr(dataloader, "dataset", None)
        if not _numbered(dataset):
            return dataloader
        loader = DataLoader(_Numbered(dataset), batch_size=self.args.eval_batch_size,
                            collate_fn=_WithIndex(dataloader.collate_fn), num_workers=self.args.dataloader_num_workers,
                            pin_memory=self.args.dataloader_pin_memory)
        return self.accelerator.prepare(loader)
