"""Hugging Face image datasets as normalised tensors with sample indices (``with_tensors``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from augshift.data import Normalization
from augshift.data.hub import load_image_dataset, num_classes, with_tensors

CIFAR_MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)  # the usual CIFAR statistics
CIFAR_STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)
CIFAR = Normalization(tuple(CIFAR_MEAN.flatten().tolist()), tuple(CIFAR_STD.flatten().tolist()), "the usual CIFAR-10 values")
PLAIN = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "none")


def expected_pixels(image: Image.Image) -> torch.Tensor:
    """Independent reference: PIL -> (3, H, W) in [0, 1] -> normalised."""
    array = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - CIFAR_MEAN) / CIFAR_STD


def test_cifar10_parquet_rows_become_normalised_tensors_with_indices(cifar10_dir):
    raw = load_image_dataset(str(cifar10_dir), "test")
    data = with_tensors(raw, normalization=CIFAR)
    assert len(data) == 10_000 and num_classes(data) == 10
    row = data[123]
    assert row["pixel_values"].shape == (3, 32, 32) and row["pixel_values"].dtype == torch.float32
    torch.testing.assert_close(row["pixel_values"], expected_pixels(raw[123]["img"]), rtol=0, atol=1e-5)
    assert int(row["labels"]) == raw[123]["label"] and int(row["index"]) == 123

    subset = data.select([5000, 7, 42])  # indices are the original rows, and survive select / shuffle
    batch = next(iter(DataLoader(subset, batch_size=3)))
    assert batch["index"].tolist() == [5000, 7, 42]
    assert batch["labels"].tolist() == [raw[i]["label"] for i in (5000, 7, 42)]
    assert batch["pixel_values"].shape == (3, 3, 32, 32)
    torch.testing.assert_close(batch["pixel_values"][1], expected_pixels(raw[7]["img"]), rtol=0, atol=1e-5)
    shuffled = data.select(range(50)).shuffle(seed=0)
    assert int(shuffled[0]["index"]) == shuffled.with_format(None)[0]["index"] != 0


def test_wrong_column_names_list_the_columns(cifar10_dir):
    raw = load_image_dataset(str(cifar10_dir), "test")
    with pytest.raises(ValueError, match=r"no label column 'fine_label'.*columns are: img, label"):
        with_tensors(raw, normalization=CIFAR, label_column="fine_label")
    with pytest.raises(ValueError, match=r"no image column 'image'.*columns are: img, label"):
        with_tensors(raw, normalization=CIFAR, image_column="image")


def test_any_column_names_cifar100_schema_and_existing_index():
    import datasets

    images = [Image.fromarray(np.full((8, 8, 3), 10 * i, dtype=np.uint8)) for i in range(4)]
    features = datasets.Features({
        "image": datasets.Image(), "fine_label": datasets.ClassLabel(num_classes=100),
        "coarse_label": datasets.ClassLabel(num_classes=20), "index": datasets.Value("int64"),
    })
    raw = datasets.Dataset.from_dict(
        {"image": images, "fine_label": [3, 99, 0, 7], "coarse_label": [1, 19, 0, 2], "index": [40, 41, 42, 43]},
        features=features,
    )
    fine = with_tensors(raw, normalization=CIFAR)  # image / fine_label found by name; the dataset's own index column is kept
    assert [int(fine[i]["labels"]) for i in range(4)] == [3, 99, 0, 7] and num_classes(raw) == 100
    assert [int(fine[i]["index"]) for i in range(4)] == [40, 41, 42, 43]
    coarse = with_tensors(raw, label_column="coarse_label", normalization=PLAIN)
    assert int(coarse[1]["labels"]) == 19 and num_classes(raw, "coarse_label") == 20
    torch.testing.assert_close(coarse[2]["pixel_values"], torch.full((3, 8, 8), 20 / 255))

    unnamed = datasets.Dataset.from_dict({"picture": images, "target": [0, 1, 2, 3]})
    with pytest.raises(ValueError, match=r"cannot find the image column.*columns are: picture, target"):
        with_tensors(unnamed, normalization=CIFAR)
    assert int(with_tensors(unnamed, normalization=CIFAR, image_column="picture", label_column="target")[3]["labels"]) == 3
    assert num_classes(unnamed, "target") == 4  # plain integers: max + 1


def make_image_folder(root: Path) -> None:
    """train/{cat,dog}/*.png with images of different sizes."""
    rng = np.random.default_rng(0)
    for label, (name, size) in enumerate((("cat", (20, 24)), ("dog", (16, 16)))):
        (root / "train" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "train" / name / f"{i}.png")


def test_image_folder_with_resize(tmp_path):
    make_image_folder(tmp_path)
    raw = load_image_dataset(str(tmp_path), "train")
    assert len(raw) == 6 and num_classes(raw) == 2
    names = raw.features["label"].names
    data = with_tensors(raw, normalization=CIFAR, size=12)
    batch = next(iter(DataLoader(data, batch_size=6)))
    assert batch["pixel_values"].shape == (6, 3, 12, 12)
    assert batch["index"].tolist() == list(range(6))
    for i in range(6):
        assert names[int(batch["labels"][i])] == ("cat" if raw[i]["image"].size == (24, 20) else "dog")
        resized = raw[i]["image"].convert("RGB").resize((12, 12), Image.Resampling.BILINEAR)
        torch.testing.assert_close(batch["pixel_values"][i], expected_pixels(resized), rtol=0, atol=1e-5)

    with pytest.raises(ValueError, match="different sizes"):  # no size: mixed sizes cannot be batched
        next(iter(DataLoader(with_tensors(raw, normalization=CIFAR), batch_size=6)))
