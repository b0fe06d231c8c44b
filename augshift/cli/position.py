"""`augshift channels`, `augshift attack`: the position channels of a trained model and the attack on them
(`augshift locate`, the location task, is `.locate`).

Examples:

    augshift attack --data ../shared/data/cifar10 --preset quick --save-model fcn.pt --out results/
    augshift channels --checkpoint fcn.pt --data ../shared/data/cifar10 --region left --out results/
    augshift channels --model resnet18 --checkpoint my_resnet18.pth --data ../shared/data/cifar10 --out results/
    augshift attack --model deeplabv3_resnet50 --checkpoint city.pth --data cityscapes/ --num-classes 19 --out results/

`attack` trains a segmenter on CIFAR mosaics (or loads any
segmentation model: torchvision's `deeplabv3_*`/`fcn_*`/`lraspp_*` or a timm model returning (N, K, H, W)),
ranks its position channels and ablates the top-N against N random channels, scored on mosaics or on the
user's image + mask data; `channels` ranks the position channels of any classifier (or saved model) and maps
where the top ones fire. Each writes JSON (with the exact command), markdown and PNG files.
"""
from __future__ import annotations

import argparse
import functools
import time
from typing import Callable, Optional

import torch

from ..seeding import Stream, stream_generator
from ..data import Normalization
from ..data.stats import normalize
from ..data.masks import check_masks, is_segmentation_source, load_segmentation_split
from ..outputs import evaluating
from ..errors import UsageError
from ..models import create_model, default_layer, load_model
from ..models.adapter import LayerChoice, layer_sizes
from ..outputs import logits_of
from ..position import LocationCanvas, attack_curve, evaluate_canvas, rank_position_channels, segmentation_scores
from ..position.recipes import SEGMENTATION_PRESETS, train_segmentation
from ..position.segmentation import MosaicSegmentation
from ..position.channels import channel_maps, get_module, plot_channel_maps
from ..reporting.tables import markdown_grid
from .common import choose_device, choose_normalization, recorded_command, save_model, write_results
from .position_options import NUM_CLASSES, evaluated_split, load_images, preset_config, training_statistics


def _num_outputs(model: torch.nn.Module, images: torch.Tensor, device: torch.device) -> int:
    """K of a segmenter's logits (N, K, H, W), from the first of `images` (N, C, H, W)."""
    with evaluating(model.to(device)):
        logits = logits_of(model(images[:1].to(device)))
    if logits.dim() != 4:
        raise UsageError(f"{type(model).__name__} returns logits of shape {tuple(logits.shape)}, not (N, K, H, W): the "
                         f"attack scores segmenters; rank a classifier's channels with `augshift channels`")
    return int(logits.shape[1])


def _layer(args: argparse.Namespace, model: torch.nn.Module, images: torch.Tensor) -> LayerChoice:
    """`--layer` (its map size measured) or the model adapter's default layer; a note is printed."""
    if args.layer is None:
        choice = default_layer(model, images)
    else:
        get_module(model, args.layer)  # names the candidates when there is no such module
        size = layer_sizes(model, images, [args.layer]).get(args.layer)
        if size is None:
            raise UsageError(f"module {args.layer!r} of {type(model).__name__} gives no feature maps in its forward: "
                             "pick another --layer")
        choice = LayerChoice(args.layer, size)
        if not choice.has_extent:
            choice = LayerChoice(args.layer, size, f"{args.layer}'s maps have no spatial extent at this input size "
                                                   f"({'x'.join(map(str, size)) or 'pooled'}): its channels are ranked, "
                                                   "but there is no map of where they fire")
    print(f"ranking {choice.name} ({'x'.join(map(str, choice.size)) or 'pooled'} maps)" + (f": {choice.note}"
                                                                                         if choice.note else ""))
    return choice


def _test_set(
    args: argparse.Namespace, model: torch.nn.Module, meta: dict, normalization: Normalization, limit: Optional[int],
    device: torch.device,
) -> tuple[torch.Tensor, Callable[[torch.nn.Module], dict], str]:
    """Test inputs (N, C, H, W), their evaluation and a description: canvases in every cell for a model saved by
    `locate`; the user's masks when `--data` has them; else mosaics of `--data`'s images (the test bed)."""
    generator = torch.Generator().manual_seed(args.seed)
    split = evaluated_split(args)
    if meta.get("task") in ("location", "class"):
        images, labels = load_images(args, split, limit, size=args.image_size)
        canvas = LocationCanvas(normalize(images, normalization), labels, grid=meta["grid"], generator=generator)

        def accuracy(net: torch.nn.Module) -> dict:
            report = evaluate_canvas(net, canvas, task=meta["task"], exhaustive=True, device=device)
            return {"accuracy": report.accuracy}
        return canvas.batch(torch.arange(len(canvas)))[0], accuracy, f"{len(canvas)} test canvases"
    if is_segmentation_source(args.data, split, mask_column=args.mask_column):
        images, masks = load_segmentation_split(args.data, split, limit=limit, size=args.image_size,
                                                image_column=args.image_column, mask_column=args.mask_column)
        images = normalize(images, normalization)
        what = f"{len(images)} images with masks ({args.data} [{split}])"
    else:
        prior = meta.get("layout_prior", args.layout_prior)
        images, labels = load_images(args, split, limit, size=args.image_size)
        images, masks = MosaicSegmentation(normalize(images, normalization), labels, grid=meta.get("grid", args.grid),
                                           layout_prior=prior, generator=generator).tensors()
        what = f"{len(images)} test mosaics of {args.data} [{split}]" + (f" (layout prior {prior:g})" if prior else "")
    num_classes = _num_outputs(model, images, device)  # what the model predicts: the confusion matrix's size
    if args.num_classes is not None and args.num_classes != num_classes:
        raise UsageError(f"--num-classes {args.num_classes}, but the model predicts {num_classes} classes; "
                         "drop --num-classes or build the model with that many")
    check_masks(masks, num_classes, ignore_index=args.ignore_index)

    def scores(net: torch.nn.Module) -> dict:
        return segmentation_scores(net, images, masks, num_classes=num_classes, regions=args.regions, device=device,
                                   ignore_index=args.ignore_index)
    return images, scores, what


# ----------------------------------------------------------------------------------------------- channels

def run_channels(args: argparse.Namespace) -> int:
    loaded = load_model(args.checkpoint, model=args.model, num_classes=args.num_classes, pretrained=args.pretrained)
    model, meta, device = loaded.model, loaded.meta, choose_device(args.device)
    split = evaluated_split(args)
    raw = None if meta else load_images(args, split, args.limit, size=args.image_size)[0]

    def own_statistics() -> Normalization:  # a model saved by locate / attack has its test set built below from them
        images = raw if raw is not None else load_images(args, split, args.limit, size=args.image_size)[0]
        return Normalization.of_images(images, source=f"the ranked images' own statistics ({loaded.weights} records "
                                                      "none)")
    normalization = choose_normalization(args, loaded.normalization, own_statistics)
    if meta:  # a model saved by locate / attack: the canvases or mosaics it was trained on
        images = _test_set(args, model, meta, normalization, args.limit, device)[0]
    else:
        images = normalize(raw, normalization)
    layer = _layer(args, model.to(device), images)
    ranking = rank_position_channels(model, layer.name, images, transform=args.transform, region=args.region,
                                     device=device)
    top = ranking.top(args.top)
    stem = f"channels-{layer.name.replace('.', '_')}-{args.transform}" + (f"-{args.region}" if args.region else "")
    figures = {f"{stem}.png": functools.partial(ranking.plot, top=args.top)}
    data = dict(command=recorded_command(args), checkpoint=args.checkpoint, model=loaded.name, weights=loaded.weights,
                meta=meta, eval_split=split, normalization=normalization.to_dict(), layer=layer.name,
                layer_size=list(layer.size), layer_note=layer.note, ranking=ranking.to_dict())
    header = ("rank", "channel", "score")
    if layer.has_extent:
        maps = channel_maps(model, layer.name, images, top, device=device)
        figures[f"{stem}-maps.png"] = functools.partial(plot_channel_maps, maps, top, title=(
            f"{layer.name}: mean activation of the top {len(top)} channels over {len(images)} images"))
        data["top_channel_maps"] = {str(c): m.tolist() for c, m in zip(top, maps)}
        rows = [(i + 1, c, f"{float(ranking.scores[c]):.4f}", "%d, %d" % divmod(int(m.argmax()), m.shape[-1]))
                for i, (c, m) in enumerate(zip(top, maps))]
        header += ("peak of its mean map (row, col)",)
        where = f"`{stem}-maps.png`: where the top channels fire."
    else:
        rows = [(i + 1, c, f"{float(ranking.scores[c]):.4f}") for i, c in enumerate(top)]
        where = "No maps: the layer's maps have no spatial extent at this input size."
    score = (f"mean pooled(A) - pooled(B), A with the content in the {args.region} region" if args.region
             else "mean |pooled(x) - pooled(moved x)|")
    markdown = "\n".join([
        f"# Position channels of {layer.name} ({args.transform}{', ' + args.region if args.region else ''})", "",
        f"Command: `{data['command']}`", "",
        f"{len(images)} images of {args.data} [{split}], normalised with {normalization.source}; "
        f"{layer.note + '; ' if layer.note else ''}score: {score}; `{stem}.png`: the sorted scores. {where}", "",
        markdown_grid(header, rows)])
    write_results(args.out, stem, data, markdown, figures=figures)
    return 0


# ----------------------------------------------------------------------------------------------- attack

def _attack_model(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, dict, dict, Normalization]:
    """`--checkpoint` / `--pretrained`, or `--model` (default `fcn_resnet18`) trained on mosaics of `--data`
    with the preset; returns (model, meta, info, normalization)."""
    if args.checkpoint or args.pretrained:
        loaded = load_model(args.checkpoint, model=args.model, num_classes=args.num_classes, pretrained=args.pretrained,
                            task="segmentation")
        info = dict(checkpoint=args.checkpoint, model=loaded.name, weights=loaded.weights)
        split = evaluated_split(args)
        normalization = choose_normalization(args, loaded.normalization, lambda: Normalization.of_images(
            load_images(args, split, args.test_limit or 1000, size=args.image_size)[0],
            source=f"the test images' own statistics ({loaded.weights} records none)"))
        return loaded.model, loaded.meta, info, normalization
    config = preset_config(args, SEGMENTATION_PRESETS)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    name, kwargs = args.model or "fcn_resnet18", dict(num_classes=args.num_classes or NUM_CLASSES)
    model = create_model(name, kwargs["num_classes"], task="segmentation")
    images, labels = load_images(args, args.train_split, config.train_limit)
    normalization = choose_normalization(args, None, lambda: training_statistics(images, args))
    start = time.time()
    mosaics = MosaicSegmentation(normalize(images, normalization), labels, grid=args.grid,
                                 layout_prior=args.layout_prior, generator=generator)
    history = train_segmentation(model, mosaics, config=config, generator=generator, device=device)
    meta = dict(task="segmentation", grid=args.grid, layout_prior=args.layout_prior,
                normalization=normalization.to_dict())
    if args.save_model:
        save_model(args.save_model, model, name, kwargs, meta)
    info = dict(model=name, config=config.to_dict(), train_images=len(images), train_steps=sum(row["steps"] for row in history),
                train_seconds=round(time.time() - start, 1), final_train_loss=history[-1]["loss"])
    return model, meta, info, normalization


def run_attack(args: argparse.Namespace) -> int:
    device = choose_device(args.device)
    model, meta, info, normalization = _attack_model(args, device)
    test_limit = args.test_limit or preset_config(args, SEGMENTATION_PRESETS).test_limit
    images, evaluate, what = _test_set(args, model, meta, normalization, test_limit, device)
    layer = _layer(args, model.to(device), images).name
    ranking = rank_position_channels(model, layer, images, transform=args.transform, region=args.region, device=device)
    counts = [int(c) for c in args.counts.split(",")]
    curve = attack_curve(model, layer, ranking, evaluate, counts=counts, draws=args.draws,
                         generator=stream_generator(args.seed, Stream.ATTACK))
    region = f"-{args.region}" if args.region else ""
    prior = f"-prior{meta['layout_prior']:g}" if meta.get("layout_prior") else ""
    stem = f"attack-{layer.replace('.', '_')}-{args.transform}{region}{prior}"
    data = dict(command=recorded_command(args), preset=args.preset, seed=args.seed, device=str(device), meta=meta, model=info,
                normalization=normalization.to_dict(), test_images=len(images), regions=args.regions,
                ignore_index=args.ignore_index, curve=curve.to_dict())
    ranked = (f"signed {args.region}-region ranking (the project's procedure: A = the content in the {args.region} "
              f"region, B = mirrored)" if args.region else f"{args.transform} ranking (Islam et al.)")
    markdown = "\n".join([
        f"# Position attack on {layer}: {ranked}", "", f"Command: `{data['command']}`", "",
        f"{what}, normalised with {normalization.source}; mIoU per region ({args.regions}: the other pixels ignored); "
        f"each random-N value: {args.draws} draws of N random channels out of {len(ranking.channels)}.", "",
        curve.markdown(),
    ])
    figures = {f"{stem}.png": curve.plot, f"{stem}-ranking.png": functools.partial(ranking.plot, top=counts[0])}
    write_results(args.out, stem, data, markdown, figures=figures)
    return 0
