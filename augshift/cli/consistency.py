"""`augshift consistency`: accuracy and shift consistency of any model on a labelled image set (what it does and
its options: `augshift.cli.parser`)."""
from __future__ import annotations

import argparse
import functools

import torch
from torchvision.transforms.functional import center_crop

from ..data import Normalization, eval_split, load_split
from ..data.batches import iterate_batches
from ..data.hub import describe_split, resolve_columns
from ..data.splits import EMBEDDED, open_split
from ..data.stats import normalize
from ..errors import UsageError
from ..metrics import evaluate_shift_consistency
from ..models import load_model
from ..outputs import logits_of
from ..protocols import check_crop_options
from ..reporting.files import check_result_files
from ..reporting.plots import plot_consistency_curves
from ..reporting.tables import markdown_table
from .common import choose_device, choose_normalization, recorded_command, write_results


def check_labels_and_classes(model: torch.nn.Module, image: torch.Tensor, labels: torch.Tensor,
                             args: argparse.Namespace, split: str) -> None:
    """Before any evaluation: refuse labels that cannot be scored (`-1` marks hidden labels), a model that does not
    take the images' size, and a model whose number of outputs is not the data's (declared by its label feature) or
    is too small for its labels: accuracy would be meaningless."""
    where = f"{args.data} [{split}]"
    unlabelled = int((labels < 0).sum())
    if unlabelled:
        which = "has no labels" if unlabelled == len(labels) else f"has {unlabelled} of {len(labels)} images unlabelled"
        raise UsageError(f"{where} {which} (label {int(labels.min())}, as hub datasets mark hidden test labels): "
                         "evaluate a labelled split, e.g. --eval-split validation")
    try:
        with torch.no_grad():
            outputs = logits_of(model(image)).shape[-1]
    except (AssertionError, RuntimeError, ValueError) as error:  # a fixed-size model's own check of its input
        raise UsageError(f"the model does not take {image.shape[-2]}x{image.shape[-1]} images ({str(error).strip()}): "
                         "pass --image-size with its input size (and --crop-from for larger crop-protocol images)") from None
    if args.data == EMBEDDED:  # generated: its classes are its labels'
        declared, found = None, int(labels.max()) + 1
    else:
        dataset = open_split(args.data, split)
        _, label_column = resolve_columns(dataset, args.image_column, args.label_column)
        declared = getattr(dataset.features[label_column], "num_classes", None)
        found = declared if declared is not None else int(max(dataset.with_format(None)[label_column])) + 1
    if found != outputs if declared is not None else found > outputs:
        raise UsageError(f"the model has {outputs} classes but {where} has {found}: pass --num-classes "
                         f"{found} (with the --checkpoint of a model trained on this data)")
    if int(labels.max()) >= outputs:
        raise UsageError(f"{where} has label {int(labels.max())}, outside the model's {outputs} classes: pass "
                         f"--num-classes (with the --checkpoint of a model trained on this data)")


def run(args: argparse.Namespace) -> int:
    check_crop_options(args.protocols, args.crop_from, args.image_size)
    if args.out:  # before any work: the files this result writes, against the other results in --out
        figures = ["consistency.png"] if args.curve_max_shift is not None else []
        check_result_files(args.out, ["consistency.md", "consistency.json", *figures], manifest="consistency.json")
    device = choose_device(args.device)
    loaded = load_model(args.checkpoint, model=args.model, num_classes=args.num_classes, pretrained=args.pretrained)
    split = eval_split(args.data, args.eval_split)
    images, labels = load_split(args.data, split, limit=args.limit, size=args.crop_from or args.image_size,
                                centre_crop=args.crop_from is not None, image_column=args.image_column,
                                label_column=args.label_column)
    data = f"first {len(images)} images of {describe_split(args.data, split)}"
    print(f"{loaded.name} ({loaded.weights}): {data}")
    normalization = choose_normalization(args, loaded.normalization, lambda: Normalization.of_images(
        images, source=f"the evaluated images' own statistics ({loaded.weights} records none)"))
    model = loaded.model.to(device)
    first = normalize(images[:1], normalization)  # what the model sees: the centre crop, with the crop protocol
    first = center_crop(first, [args.image_size]) if args.crop_from else first
    check_labels_and_classes(model, first.to(device), labels, args, split)
    report = evaluate_shift_consistency(
        model, iterate_batches(images, labels, args.batch_size, normalization=normalization), device=device,
        progress=True, max_shift=args.max_shift, mode=args.mode, seed=args.seed, curve_max_shift=args.curve_max_shift,
        protocols=args.protocols, crop_size=args.image_size if args.crop_from else None,
    ).to_dict()
    table = markdown_table({loaded.name: report})
    if not args.out:
        print(table)
        return 0
    figures = {}
    if args.curve_max_shift is not None:
        figures["consistency.png"] = functools.partial(plot_consistency_curves, {loaded.name: report},
                                                                title=loaded.name)
    summary = {"args": vars(args) | {"run": None}, "command": recorded_command(args), "model": loaded.name,
               "weights": loaded.weights, "data": data, "eval_split": split,
               "normalization": normalization.to_dict(), "results": report}
    markdown = (f"# augshift consistency: {loaded.name}\n\nCommand: `{summary['command']}`\n\nData: {data}. Normalised "
                f"with mean {list(normalization.mean)}, std {list(normalization.std)} ({normalization.source}).\n\n"
                f"{table}")
    write_results(args.out, "consistency", summary, markdown, figures=figures)
    return 0
