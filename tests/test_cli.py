import json
import struct

import pytest

from augshift.cli import main


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_demo_small_run_writes_consistent_results(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--train-limit", "256", "--eval-limit", "96", "--curve-size", "16",
            "--epochs", "1", "--width", "8", "--max-shift", "2", "--threads", "1"]
    assert main(args) == 0
    summary = json.loads((out / "demo.json").read_text())
    for name in ("plain", "shift-aug", "augshift"):
        result = summary["results"][name]
        assert result["samples"] == 96 and result["curve_samples"] == 16
        assert len(result["curve_consistency"]) == 5 and result["curve_consistency"][2][2] == 100.0
        low, high = result["consistency_random_ci95"]
        assert low <= result["consistency_random"] <= high
        assert f"{result['accuracy']:.2f}" in (out / "demo.md").read_text()
    configs = summary["configs"]
    assert configs["augshift"]["augshift"] and not configs["shift-aug"]["augshift"] and not configs["plain"]["augshift"]
    assert configs["plain"]["shift"] is None and configs["shift-aug"]["shift"]["max_shift"] == 2
    assert configs["shift-aug"]["shift"]["distance"] == "cosine"  # its loss options are unused: left at the defaults
    assert configs["augshift"]["shift"]["distance"] == "mse"  # the demo's distance
    stats = summary["normalization"]
    assert stats["source"] == "the 256 training images" and len(stats["mean"]) == 3  # the data's own statistics
    for baseline in ("plain", "shift-aug"):
        assert summary["consistency_gain"][baseline]["random"] == pytest.approx(
            summary["results"]["augshift"]["consistency_random"] - summary["results"][baseline]["consistency_random"])
    width, height = png_size(out / "consistency_vs_shift.png")
    assert width > 400 and height > 200
    assert "| shift-aug |" in capsys.readouterr().out


def test_demo_on_parquet_data(tmp_path, cifar10_dir):
    out = tmp_path / "demo"
    args = ["demo", "--data", str(cifar10_dir), "--out", str(out), "--train-limit", "128", "--eval-limit", "64",
            "--curve-size", "8", "--epochs", "1", "--width", "8", "--max-shift", "1", "--threads", "1"]
    assert main(args) == 0
    summary = json.loads((out / "demo.json").read_text())
    assert str(cifar10_dir) in summary["data"] and summary["results"]["plain"]["samples"] == 64


@pytest.mark.slow
def test_default_demo_improves_consistency(tmp_path):
    """The README's main job as shipped: AugShift is more shift-consistent than plain training on both
    protocols, beyond the 95% intervals (against shift augmentation alone the demo reports, not asserts)."""
    assert main(["demo", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "demo.json").read_text())["results"]
    for protocol in ("random", "circular"):
        assert results["augshift"][f"consistency_{protocol}_ci95"][0] > results["plain"][f"consistency_{protocol}_ci95"][1]


def shapes_folder(root, *, classes: tuple[str, ...], sizes: dict[str, int]):
    """An image folder (<split>/<class>/<image>.png) of the demo's generated shapes, only `classes`."""
    from PIL import Image

    from augshift.data.shapes import SHAPE_CLASSES, make_shapes

    wanted = [SHAPE_CLASSES.index(name) for name in classes]
    for seed, (split, n) in enumerate(sizes.items()):
        images, labels = make_shapes(4 * n, seed=seed)  # 10 classes drawn evenly: 4n images hold n of 3 classes
        keep = [i for i in range(len(labels)) if int(labels[i]) in wanted][:n]
        for i in keep:
            folder = root / split / SHAPE_CLASSES[int(labels[i])]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    return root


def test_the_demo_claim_in_seconds_on_three_shape_classes(tmp_path):
    """The slow test above in ~35 s: the demo's shapes, 3 of its classes (disk, horizontal and vertical bar),
    1,500 training images, width 8 and 8 epochs: AugShift is more shift-consistent than plain training beyond the
    95 % intervals under `random` (measured 97.05 [96.2, 97.7] against 90.95 [89.6, 92.1] %) and more consistent
    under `circular` (97.25 against 94.95 %: at this size the intervals nearly touch, and another thread count moves
    them), and at least as accurate (not consistent by predicting one class)."""
    data = shapes_folder(tmp_path / "shapes", classes=("disk", "hbar", "vbar"), sizes={"train": 1500, "test": 2000})
    args = ["demo", "--data", str(data), "--out", str(tmp_path / "demo"), "--curve-size", "8", "--epochs", "8",
            "--batch-size", "32", "--width", "8", "--threads", "1"]
    assert main(args) == 0
    results = json.loads((tmp_path / "demo" / "demo.json").read_text())["results"]
    assert results["augshift"]["samples"] == 2000
    assert results["augshift"]["accuracy_ci95"][1] >= results["plain"]["accuracy_ci95"][0] > 90.0
    augshift, plain = results["augshift"], results["plain"]
    assert augshift["consistency_random_ci95"][0] > plain["consistency_random_ci95"][1]
    assert augshift["consistency_circular"] > plain["consistency_circular"]


def test_consistency_command_on_checkpoint(tmp_path, cifar10_dir):
    import timm
    import torch

    model = timm.create_model("resnet18", num_classes=10)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ckpt.pth")
    args = ["consistency", "--model", "resnet18", "--num-classes", "10", "--checkpoint", str(tmp_path / "ckpt.pth"),
            "--data", str(cifar10_dir), "--eval-limit", "24", "--curve-max-shift", "1", "--out", str(tmp_path / "c"),
            "--device", "cpu"]
    assert main(args) == 0
    result = json.loads((tmp_path / "c" / "consistency.json").read_text())["results"]
    assert result["samples"] == 24 and (tmp_path / "c" / "consistency.png").is_file()


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("old,new,dest", [("--limit", "--eval-limit", "limit"), ("--test-size", "--eval-limit", "limit"),
                                          ("--eval-samples", "--eval-limit", "limit")])
def test_every_sample_limit_has_one_name_and_the_old_ones_still_work(old, new, dest, capsys):
    from augshift.cli import build_parser

    base = ["consistency", "--model", "resnet18", "--data", "x"]
    assert getattr(build_parser().parse_args([*base, new, "7"]), dest) == 7
    assert capsys.readouterr().err == ""
    assert getattr(build_parser().parse_args([*base, old, "7"]), dest) == 7
    assert capsys.readouterr().err == f"augshift consistency: note: {old} is now {new}\n"



def test_every_command_and_script_names_its_limits_alike():
    import argparse

    from augshift.cli import build_parser
    from augshift.integrations.accelerate.train import parse_args
    from sweep.options import add_common_args

    accelerate = parse_args(["--output", "unused", "--train-limit", "5", "--eval-limit", "3"])
    assert (accelerate.train_samples, accelerate.eval_samples) == (5, 3)
    commands = build_parser()._subparsers._group_actions[0].choices
    sweep = argparse.ArgumentParser()
    add_common_args(sweep)
    parsers = {**commands, "sweep": sweep}
    for name, parser in parsers.items():
        flags = {flag for action in parser._actions for flag in action.option_strings}
        assert "--eval-limit" in flags, name
        assert "--train-limit" in flags or name in ("consistency", "channels"), name
