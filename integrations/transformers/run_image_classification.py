"""Fine-tune a Hugging Face `transformers` image classifier with AugShift: transformers' `run_image_classification.py`
example with `AugShiftTrainer` in place of `Trainer`.

    python -m augshift.integrations.transformers.run_image_classification --dataset_name uoft-cs/cifar10 \\
        --model_name_or_path microsoft/resnet-18 --ignore_mismatched_sizes --output_dir out --do_train --do_eval
    torchrun --nproc_per_node 2 -m augshift.integrations.transformers.run_image_classification \\
        --dataset_name ./parquet-folder --model_name_or_path ./my-save_pretrained-folder --output_dir out --do_eval --use_cpu

(transformers' own `run_image_classification.py` works too, with `Trainer` replaced by `AugShiftTrainer`.)

`--dataset_name`: a hub name, a parquet file or folder in the hub layout, or an image folder (`train/<class>/...`,
`test/` or `validation/`); the evaluated split is `--eval_split`, else the source's test / validation split.
`--model_name_or_path`: a hub id or a `save_pretrained` folder (its weights; `--ignore_mismatched_sizes` for a
new head). Images are resized to the model's `image_size` (`--image_size`) and normalised with the model's image
processor's statistics, else the training images' own; the image processor saved with the model records which.
AugShift options are augshift-timm's (`--augshift-max-shift`, `--augshift-weight`, `--augshift-distance`, ...,
`--augshift-protocols` for the evaluated consistency protocols); every `TrainingArguments` flag works as usual
(`--remove_unused_columns` defaults to False here, as transformers' example asks: the transform reads the image
column). A user mistake prints one line and exits with 2.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Optional

from augshift.errors import exit_unless_installed

# the optional packages, checked before they are imported: a missing one is a line naming its extra, not a traceback
exit_unless_installed("augshift.integrations.transformers.run_image_classification", "transformers", "datasets",
                      purpose="the transformers example")

from transformers import AutoModelForImageClassification, HfArgumentParser, TrainingArguments
from transformers import ViTImageProcessor

from augshift import AugShiftConfig, add_augshift_arguments
from augshift.data import Normalization, eval_split, load_split_dataset
from augshift.data.hub import num_classes
from augshift.data.splits import open_split, split_statistics
from augshift.data.stats import normalization_policy
from augshift.errors import UsageError, run_command
from augshift.integrations.transformers import AugShiftTrainer
from augshift.models import pretrained_normalization
from augshift.models.zoos.transformers import image_processor_of
from augshift.protocols import add_protocols_argument, check_crop_options


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "hub id or save_pretrained folder of an image classifier"})
    ignore_mismatched_sizes: bool = field(default=False, metadata={"help": "a new head when the classes differ"})


@dataclass
class DataTrainingArguments:
    dataset_name: str = field(metadata={"help": "hub name, parquet file or folder, or image folder"})
    train_split: str = field(default="train")
    eval_split: Optional[str] = field(default=None, metadata={"help": "default: test, else validation or val"})
    image_column_name: Optional[str] = field(default=None, metadata={"help": "default: img, image, ..."})
    label_column_name: Optional[str] = field(default=None, metadata={"help": "default: label, labels, ..."})
    image_size: Optional[int] = field(default=None, metadata={"help": "default: the model config's image_size"})
    crop_from: Optional[int] = field(default=None, metadata={
        "help": "evaluation images: shorter side resized to N and the centre N x N kept, for the crop protocol"})
    max_train_samples: Optional[int] = field(default=None)
    max_eval_samples: Optional[int] = field(default=None)
    stats_samples: int = field(default=5000, metadata={"help": "training images whose statistics normalise a model "
                                                               "without an image processor"})


def parse(argv: list[str]) -> tuple:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    add_augshift_arguments(parser, prefix="augshift-")
    add_protocols_argument(parser, "--augshift-protocols")
    if not any(arg.startswith("--remove_unused_columns") for arg in argv):
        argv = [*argv, "--remove_unused_columns", "False"]
    model_args, data_args, training_args, options = parser.parse_args_into_dataclasses(argv)
    if training_args.remove_unused_columns:
        raise UsageError("--remove_unused_columns True would drop the image column the transform reads: leave it out")
    return model_args, data_args, training_args, options


def image_processor(model_args: ModelArguments, normalization: Normalization, size: int):
    """The model's image processor with `normalization` and the `size` it was trained at; a generic one (ViT's:
    resize, rescale, normalise) for a model that has none."""
    processor = image_processor_of(model_args.model_name_or_path)
    if processor is None:
        processor = ViTImageProcessor()
    processor.image_mean, processor.image_std = list(normalization.mean), list(normalization.std)
    current = processor.size
    edge = current.get("shortest_edge") if isinstance(current, dict) else getattr(current, "shortest_edge", None)
    processor.size = {"shortest_edge": size} if edge else {"height": size, "width": size}
    return processor


def recorded(normalization: Normalization) -> dict[str, str]:
    """The normalisation as entries of Trainer's metrics (`train_results.json`, `eval_results.json`)."""
    return {"normalization_mean": ", ".join(f"{v:.6g}" for v in normalization.mean),
            "normalization_std": ", ".join(f"{v:.6g}" for v in normalization.std),
            "normalization_source": normalization.source}


def main(argv: Optional[list[str]] = None) -> int:
    model_args, data_args, training_args, options = parse(list(sys.argv[1:] if argv is None else argv))
    augshift = AugShiftConfig.from_args(options, prefix="augshift-")
    source, columns = data_args.dataset_name, dict(image_column=data_args.image_column_name,
                                                   label_column=data_args.label_column_name)
    split = eval_split(source, data_args.eval_split) if training_args.do_eval else None
    classes = num_classes(open_split(source, data_args.train_split), data_args.label_column_name)
    model = AutoModelForImageClassification.from_pretrained(
        model_args.model_name_or_path, num_labels=classes, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes)
    size = data_args.image_size or getattr(model.config, "image_size", None)
    check_crop_options(options.augshift_protocols, data_args.crop_from, size)
    normalization = normalization_policy(
        given=None, recorded=pretrained_normalization(f"hf:{model_args.model_name_or_path}", model),
        data=lambda: split_statistics(source, data_args.train_split, limit=data_args.stats_samples, size=size,
                                      **columns))
    print(f"normalisation: {normalization.to_dict()}" + (f"; evaluating split {split!r}" if split else ""))
    tensors = dict(normalization=normalization, size=size, **columns)
    train = load_split_dataset(source, data_args.train_split, limit=data_args.max_train_samples, **tensors) \
        if training_args.do_train else None
    test = None
    if split is not None:  # with --crop_from, the larger images the crop protocol takes crops of
        test = load_split_dataset(source, split, limit=data_args.max_eval_samples, **{
            **tensors, **(dict(size=data_args.crop_from, centre_crop=True) if data_args.crop_from else {})})
    trained_size = size or int((train or test)[0]["pixel_values"].shape[-1])  # the size the model sees
    trainer = AugShiftTrainer(
        model=model, args=training_args, train_dataset=train, eval_dataset=test,
        processing_class=image_processor(model_args, normalization, trained_size), augshift=augshift,
        protocols=options.augshift_protocols, crop_size=trained_size if data_args.crop_from else None,
    )
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()  # the model and its image processor: AutoModelForImageClassification loads the folder
        result.metrics.update(recorded(normalization))
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics.update(recorded(normalization))
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(os.path.basename(__file__), main, sys.argv[1:]))
