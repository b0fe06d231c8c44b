"""Segmentation data: image + mask folders, a dataset with image / mask columns, the ignore index."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from augshift.data.masks import check_masks, decode_masks, is_segmentation_source, load_segmentation_split
from augshift.errors import UsageError


def write_pairs(root, count: int = 3, size: int = 8) -> list[np.ndarray]:
    """``root/images/i.jpg``-style pairs (PNG images, ``L`` masks with classes 0..2 and 255 = ignore)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    masks = []
    for i in range(count):
        image = np.full((size, size, 3), 40 * i, dtype=np.uint8)
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[:, size // 2:] = i % 3
        mask[0, 0] = 255
        Image.fromarray(image).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{i:03d}.png")
        masks.append(mask)
    return masks


def test_image_and_mask_folders_pair_by_name(tmp_path):
    expected = write_pairs(tmp_path / "val")
    assert is_segmentation_source(str(tmp_path), "val")
    images, masks = load_segmentation_split(str(tmp_path), "val", limit=2)
    assert images.shape == (2, 3, 8, 8) and images.dtype == torch.uint8 and int(images[1, 0, 0, 0]) == 40
    assert masks.shape == (2, 8, 8) and masks.dtype == torch.long
    assert torch.equal(masks, torch.from_numpy(np.stack(expected[:2])).long())
    _, small = load_segmentation_split(str(tmp_path), "val", size=4)
    assert small.shape == (3, 4, 4) and set(small.unique().tolist()) <= {0, 1, 2, 255}  # nearest: no blended classes
    (tmp_path / "val" / "images" / "999.png").write_bytes((tmp_path / "val" / "images" / "000.png").read_bytes())
    with pytest.raises(UsageError, match="999.png"):
        load_segmentation_split(str(tmp_path), "val")


def test_dataset_with_image_and_mask_columns(tmp_path):
    import datasets

    rows = {"image": [Image.new("RGB", (6, 6), (i, 0, 0)) for i in range(4)],
            "label": [Image.fromarray(np.full((6, 6), i, dtype=np.uint8), mode="L") for i in range(4)]}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Image()})
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "test-00000-of-00001.parquet"))
    assert is_segmentation_source(str(tmp_path), "test")
    images, masks = load_segmentation_split(str(tmp_path), "test")
    assert images.shape == (4, 3, 6, 6) and masks[:, 0, 0].tolist() == [0, 1, 2, 3]
    with pytest.raises(UsageError, match="no mask column 'seg'"):
        load_segmentation_split(str(tmp_path), "test", mask_column="seg")


def test_classification_data_is_no_segmentation_source(cifar10_dir):
    assert not is_segmentation_source(str(cifar10_dir), "test")


def test_masks_must_hold_classes_or_the_ignore_index():
    masks = torch.tensor([[[0, 1], [255, 2]]])
    check_masks(masks, 3)
    with pytest.raises(UsageError, match="--ignore-index"):
        check_masks(masks, 2)
    with pytest.raises(UsageError, match="mode RGB"):
        decode_masks([Image.new("RGB", (2, 2))])
