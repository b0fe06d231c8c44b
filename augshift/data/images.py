"""Decoding images faithfully: every image is turned into 8-bit RGB without losing what it shows, or refused with its
name.

`open_image` opens one image (a file path, a `datasets` `{bytes, path}` record or a PIL image) and
`to_rgb` converts it: colour modes (`1`, `L`, `P`, `CMYK`, `YCbCr`, `LAB`, `HSV`, `RGBX`) by
PIL's conversion, 16-bit grey (`I;16*`) by scaling its full range onto 0-255, 32-bit integer and float grey (`I`,
`F`) only when every value is already a whole number in 0-255 (else their scale is unknown), and images with an
alpha channel only when every pixel is opaque (a transparent pixel's colour is undefined). A truncated or damaged
file is refused whole, never scored in part. `decode_images` stacks many into a `uint8` (N, 3, H, W) tensor.
"""
from __future__ import annotations

import io
from os import PathLike
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import UsageError

ImageLike = Union[str, PathLike, dict, Image.Image]
ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
WIDE_MODES = ("I", "F")  # 32-bit integer / float grey: no known full scale


def _name(image: ImageLike, position: int) -> str:
    if isinstance(image, dict):
        return image.get("path") or f"image {position} (stored bytes)"
    if isinstance(image, Image.Image):
        return getattr(image, "filename", "") or f"image {position}"
    return str(image)


def open_image(image: ImageLike, *, position: int = 0) -> Image.Image:
    """`image` opened and fully decoded, as 8-bit RGB (see the module docstring for what is converted how).

    Args:
        image: a path, a `datasets` `Image(decode=False)` record (`{"bytes": ..., "path": ...}`) or a PIL image.
        position: its position in the batch, named in errors when it has no file name.

    Returns:
        A PIL image in mode `RGB`.

    Raises:
        UsageError: the file is not an image, is truncated or damaged, or converting it would lose what it shows;
            the message names the file.

    Examples:
        >>> open_image(Image.new("L", (4, 2), 7)).mode, open_image(Image.new("L", (4, 2), 7)).getpixel((0, 0))
        ('RGB', (7, 7, 7))
        >>> open_image(Image.new("I;16", (2, 2), 65535)).getpixel((0, 0))  # 16-bit full scale -> 255
        (255, 255, 255)
    """
    name = _name(image, position)
    try:
        if isinstance(image, dict):
            source = io.BytesIO(image["bytes"]) if image.get("bytes") is not None else image.get("path")
            if source is None:
                raise UsageError(f"{name} has neither bytes nor a path")
            image = Image.open(source)
        elif not isinstance(image, Image.Image):
            image = Image.open(image)
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UsageError(f"cannot decode {name} ({type(error).__name__}: {error}): the file is not an image, or is "
                         "truncated or damaged; remove or replace it") from None
    return to_rgb(image, name=name)


def to_rgb(image: Image.Image, *, name: str = "the image") -> Image.Image:
    """`image` as 8-bit RGB, converted without loss of what it shows, or a `UsageError` naming `name`.

    Examples:
        >>> to_rgb(Image.new("CMYK", (2, 2))).mode
        'RGB'
        >>> to_rgb(Image.new("F", (2, 2), 300.0))
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: the image holds F values in [300, 300], not whole numbers in 0-255: 8-bit RGB would clip or round them; save it as 8-bit (or 16-bit) PNG / JPEG
    """
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ALPHA_MODES:
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            raise UsageError(f"{name} has {int((alpha < 255).sum())} transparent pixels, whose colour is undefined: "
                             "flatten it onto a background first (e.g. PIL's Image.alpha_composite)")
        return image.convert("RGBA").convert("RGB")
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.round(grey * 255 / 65535).astype(np.uint8)).convert("RGB")
    if image.mode in WIDE_MODES:
        values = np.asarray(image)
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 255 or not np.array_equal(values, np.round(values)):
            raise UsageError(f"{name} holds {image.mode} values in [{low:g}, {high:g}], not whole numbers in 0-255: "
                             "8-bit RGB would clip or round them; save it as 8-bit (or 16-bit) PNG / JPEG")
        return Image.fromarray(values.astype(np.uint8)).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:  # a mode PIL cannot convert (e.g. premultiplied "La")
        raise UsageError(f"{name} is in mode {image.mode}, which cannot be converted to RGB ({error}): save it as an "
                         "RGB or greyscale PNG / JPEG") from None


def _resized(image: Image.Image, size: Optional[int], centre_crop: bool) -> Image.Image:
    if size is None or image.size == (size, size):
        return image
    if not centre_crop:
        return image.resize((size, size), resample=Image.Resampling.BILINEAR)
    scale = size / min(image.size)
    width, height = max(size, round(image.size[0] * scale)), max(size, round(image.size[1] * scale))
    image = image.resize((width, height), resample=Image.Resampling.BILINEAR)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def decode_images(images: Sequence[ImageLike], *, size: Optional[int] = None, centre_crop: bool = False) -> Tensor:
    """Decode images (paths, `datasets` records or PIL images; `open_image`) into `uint8` (N, 3, H, W).

    Args:
        images: the images.
        size: resize every image to `size` x `size` (bilinear), or with `centre_crop` resize its shorter side
            to `size` and take the centre `size` x `size` (the usual evaluation transform, keeping the aspect
            ratio); without `size` all images must already have one size (true of CIFAR).
        centre_crop: see `size`.

    Returns:
        `uint8` (N, 3, H, W).

    Examples:
        >>> decode_images([Image.new("RGB", (8, 6)), Image.new("L", (6, 6))], size=4).shape
        torch.Size([2, 3, 4, 4])
    """
    arrays = [np.asarray(_resized(open_image(image, position=i), size, centre_crop)) for i, image in enumerate(images)]
    if not arrays:
        raise UsageError("no images to decode")
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise UsageError(f"images have different sizes {sorted(sizes)[:4]}...; resize them with --image-size "
                         "(in Python: size=)")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
