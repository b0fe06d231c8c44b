"""``augshift locate / channels / attack`` end to end on the shared CIFAR-10 (tiny limits; slow: the README run)."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from augshift.cli import main


def test_locate_channels_attack_end_to_end(cifar10_dir, tmp_path):
    data, out = str(cifar10_dir), str(tmp_path)
    assert main(["locate", "--data", data, "--model", "permutenet", "--train-limit", "48", "--eval-limit", "6",
                 "--out", out, "--save-model", str(tmp_path / "p.pt"), "--device", "cpu"]) == 0
    result = json.loads((tmp_path / "locate-permutenet-resnet18-location-g3.json").read_text())
    assert result["command"].startswith("augshift locate ") and "--model permutenet" in result["command"]
    assert result["train_images"] == 48 and result["train_steps"] == 1
    assert sum(result["results"]["total"]) == 6 * 9 and 0 <= result["results"]["accuracy"] <= 1  # every cell
    assert (tmp_path / "locate-permutenet-resnet18-location-g3.png").read_bytes()[:4] == b"\x89PNG"
    assert "| permutenet_resnet18 | 3x3 | location |" in (tmp_path / "locate-permutenet-resnet18-location-g3.md").read_text()

    assert main(["attack", "--data", data, "--train-limit", "36", "--eval-limit", "18", "--epochs", "1",
                 "--layout-prior", "0.5", "--counts", "2,4", "--draws", "2", "--out", out]) == 0
    attack = json.loads((tmp_path / "attack-trunk_layer4-hflip-prior0.5.json").read_text())
    curve = attack["curve"]
    assert attack["test_images"] == 2 and curve["counts"] == [2, 4] and curve["layer"] == "trunk.layer4"
    assert {k: v for k, v in attack["meta"].items() if k != "normalization"} == {"task": "segmentation", "grid": 3,
                                                                                 "layout_prior": 0.5}
    assert attack["meta"]["normalization"] == attack["normalization"]  # what it trained with, recorded
    assert set(curve["top"]) == {"miou", "pixel_accuracy", "miou_left", "miou_center", "miou_right"}
    assert all(len(draws) == 2 for draws in curve["random"]["miou"])
    assert (tmp_path / "attack-trunk_layer4-hflip-prior0.5-ranking.png").exists()

    assert main(["channels", "--checkpoint", str(tmp_path / "p.pt"), "--layer", "layer4", "--data", data,
                 "--eval-limit", "6", "--region", "left", "--out", out]) == 0
    ranking = json.loads((tmp_path / "channels-layer4-hflip-left.json").read_text())["ranking"]
    assert ranking["num_images"] == 6 and sorted(ranking["channels"]) == list(range(512))


def test_attack_on_a_canvas_classification_checkpoint(cifar10_dir, tmp_path):
    data, out = str(cifar10_dir), str(tmp_path)
    assert main(["locate", "--data", data, "--task", "class", "--train-limit", "48", "--eval-limit", "4", "--out", out,
                 "--save-model", str(tmp_path / "g.pt")]) == 0
    result = json.loads((tmp_path / "locate-gapnet-resnet18-class-g3.json").read_text())
    assert result["model_kwargs"] == {"num_classes": 10}
    assert main(["attack", "--checkpoint", str(tmp_path / "g.pt"), "--data", data, "--eval-limit", "4",
                 "--counts", "8", "--draws", "1", "--out", out]) == 0
    curve = json.loads((tmp_path / "attack-trunk_layer4-hflip.json").read_text())["curve"]
    assert set(curve["top"]) == {"accuracy"} and len(curve["random"]["accuracy"][0]) == 1


def test_channels_of_a_saved_model_that_records_no_normalisation(cifar10_dir, tmp_path):
    """A --save-model file written before locate recorded its normalisation: the ranked images' own statistics."""
    import torch

    data, saved = str(cifar10_dir), tmp_path / "g.pt"
    assert main(["locate", "--data", data, "--train-limit", "24", "--eval-limit", "4", "--epochs", "1",
                 "--out", str(tmp_path), "--save-model", str(saved)]) == 0
    state = torch.load(saved, weights_only=False)
    del state["meta"]["normalization"]
    torch.save(state, saved)
    assert main(["channels", "--checkpoint", str(saved), "--layer", "trunk.layer3", "--data", data, "--eval-limit", "4",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "channels-trunk_layer3-hflip.json").read_text())
    assert result["normalization"]["source"].startswith("the ranked images' own statistics")


README_LOCATE = "augshift locate --data ../shared/data/cifar10 --model gapnet --grid 3 --preset quick --out {out}"


@pytest.mark.slow
def test_readme_quick_gapnet_command_reaches_99_percent(cifar10_dir, tmp_path):
    command = README_LOCATE.format(out=tmp_path).replace("../shared/data/cifar10", str(cifar10_dir))
    subprocess.run([sys.executable, "-m", "augshift.cli", *shlex.split(command)[1:]], check=True)
    result = json.loads((tmp_path / "locate-gapnet-resnet18-location-g3.json").read_text())
    assert result["results"]["accuracy"] >= 0.99 and sum(result["results"]["total"]) == 9000


def test_locate_official_trunk_reports_last_and_best_epoch(cifar10_dir, tmp_path):
    """The paper preset's trunk (resnet18_stride16) on a tiny run of 3 epochs: each epoch's test score joins the
    history, the best epoch is the first of the highest scores, and its report is of that epoch's weights."""
    out = str(tmp_path)
    assert main(["locate", "--data", str(cifar10_dir), "--model", "gapnet", "--trunk", "resnet18_stride16",
                 "--train-limit", "16", "--eval-limit", "2", "--epochs", "3", "--out", out, "--device", "cpu"]) == 0
    result = json.loads((tmp_path / "locate-gapnet-resnet18_stride16-location-g3.json").read_text())
    scores = [row["test_accuracy"] for row in result["history"]]
    assert len(scores) == 3 and all(0 <= s <= 100 for s in scores)
    assert result["best"]["epoch"] == scores.index(max(scores)) + 1
    assert result["model"] == "gapnet_resnet18_stride16"
    assert result["config"]["trunk"] == "resnet18_stride16"  # the trunk it trained, not the preset's
    for report in (result["results"], result["best"]["results"]):
        assert sum(report["total"]) == 2 * 9  # every test image in every cell
    assert (tmp_path / "locate-gapnet-resnet18_stride16-location-g3-curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "best epoch" in (tmp_path / "locate-gapnet-resnet18_stride16-location-g3.md").read_text()
