"""Bad input and faults, tried as a new user would (issue 15): every user mistake is refused with one line and exit
code 2 (commands) or a named exception (Python API), before any work and without writing or overwriting a file;
faults never give a silent wrong result. Each case names the message fragment the user reads."""
from __future__ import annotations

import ctypes
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augshift import AugShift, AugShiftConfig, PooledFeatures, ShiftConsistency, evaluate_shift_consistency, loss_parts
from augshift.cli import main
from augshift.data import Normalization, eval_split, load_split
from augshift.data.hub import describe_split, load_image_dataset, to_tensors
from augshift.engine import TensorBatches, TrainConfig, Trainer, fit
from augshift.errors import UsageError, run_command
from augshift.models.small_cnn import create_small_cnn
from augshift.reporting.files import result_unit, write_json_atomic

SIZE = 32  # px: small images keep the commands fast (and fit every shift protocol of the metric)


# ---------------------------------------------------------------------------------------------- data on disk

def image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))


def write_hub_parquet(path: Path, count: int, *, offset: int = 0) -> Path:
    """``count`` images in the uoft-cs/cifar10 schema (``img`` Image, ``label`` ClassLabel of 2 classes)."""
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    rows = {"img": [image(offset + i) for i in range(count)], "label": [i % 2 for i in range(count)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return path


def write_labelled_parquet(path: Path, labels: list[int]) -> Path:
    """A hub-layout split whose labels are ``labels`` (``-1``: hidden, as hub test splits mark them)."""
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"img": [image(i) for i in range(len(labels))], "label": labels},
                               features=features).to_parquet(str(path))
    return path


def write_image_folder(folder: Path, count: int, *, offset: int = 0, corrupt: bool = False) -> Path:
    for i in range(count):
        target = folder / "ab"[i % 2] / f"{i:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if corrupt:
            target.write_bytes(b"not a png")
        else:
            image(offset + i).save(target)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("data")
    buffer = io.BytesIO()
    image(0).save(buffer, format="PNG")
    plain = pa.table({"img": [{"bytes": buffer.getvalue(), "path": None}] * 10, "label": [0, 1] * 5})
    pq.write_table(plain, root / "no_metadata.parquet")  # written without Hugging Face metadata
    write_hub_parquet(root / "hub" / "train-00000-of-00001.parquet", 12)
    write_hub_parquet(root / "hub" / "test-00000-of-00001.parquet", 6, offset=100)
    for name, labels in (("hidden", [-1] * 6), ("half_hidden", [0, -1] * 3)):
        write_hub_parquet(root / name / "train-00000-of-00001.parquet", 6)
        write_labelled_parquet(root / name / "test-00000-of-00001.parquet", labels)
    for name, labels in (("string_labels", ["a", "b"] * 3), ("fractional_labels", [0.0, 1.5] * 3)):
        (root / name).mkdir()
        datasets.Dataset.from_dict({"image": [image(i) for i in range(6)], "label": labels}).to_parquet(
            str(root / name / "test-00000-of-00001.parquet"))
    write_image_folder(root / "train_val" / "train", 8)
    write_image_folder(root / "train_val" / "val", 8)  # no test/
    write_image_folder(root / "train_extra" / "train", 8)
    write_image_folder(root / "train_extra" / "extra", 8)  # neither test/ nor validation/ nor val/
    (root / "empty").mkdir()
    pq.write_table(pa.table({"picture": [buffer.getvalue()], "y": [0]}), root / "columns.parquet")
    import timm

    torch.save(timm.create_model("resnet34", num_classes=2).state_dict(), root / "resnet34.pth")  # a plain state_dict
    torch.save({"epoch": 3}, root / "no_weights.pth")
    (root / "notes.pth").write_text("not a checkpoint")
    return {
        "resnet34": root / "resnet34.pth", "no_weights": root / "no_weights.pth", "notes": root / "notes.pth",
        "one_file": write_hub_parquet(root / "one.parquet", 20), "hub": root / "hub",
        "classes": write_image_folder(root / "classes", 20), "train_val": root / "train_val",
        "train_extra": root / "train_extra",
        "no_metadata": root / "no_metadata.parquet", "empty": root / "empty", "hidden": root / "hidden",
        "half_hidden": root / "half_hidden", "string_labels": root / "string_labels",
        "fractional_labels": root / "fractional_labels",
        "corrupt": write_image_folder(root / "corrupt", 10, corrupt=True), "columns": root / "columns.parquet",
    }


# ---------------------------------------------------------------------------------------------- commands

def run_cli(argv: list[str], capsys) -> tuple[int, list[str], str]:
    """``augshift argv`` in-process: ``(exit code, stderr lines, stdout)``."""
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def assert_one_line_error(code: int, err: list[str], fragment: str) -> None:
    errors = [line for line in err if "error:" in line]
    assert code == 2, err
    assert not any("Traceback" in line for line in err), err
    assert errors == [err[-1]] and err[-1].startswith("augshift") and fragment in err[-1], err


TINY_DEMO = ["--train-limit", "40", "--eval-limit", "10", "--curve-size", "4", "--epochs", "1", "--width", "4",
             "--batch-size", "8", "--max-shift", "1", "--threads", "1"]
TINY_CONSISTENCY = ["--model", "resnet18", "--num-classes", "2", "--eval-limit", "4", "--max-shift", "1", "--device", "cpu"]

# (id, arguments with {placeholders} for the data, message fragment)
REFUSED_COMMANDS = [
    ("demo-no-evaluation-split", ["demo", "--data", "{train_extra}", *TINY_DEMO],
     "has no split to evaluate on (none of test, validation, val; its splits: extra, train): name one with --eval-split"),
    ("channels-no-evaluation-split", ["channels", "--model", "resnet18", "--data", "{train_extra}"],
     "name one with --eval-split"),
    ("consistency-no-evaluation-split", ["consistency", *TINY_CONSISTENCY, "--data", "{train_extra}"],
     "name one with --eval-split"),
    ("consistency-crop-on-images-of-the-models-size", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}",
                                                        "--protocols", "crop,fractional"],
     "the crop protocol compares crops of larger images: pass --crop-from N"),
    ("consistency-crop-from-not-larger", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--protocols", "crop",
                                          "--crop-from", "32", "--image-size", "32"],
     "--crop-from 32 needs --image-size, the crop, smaller than it"),
    ("demo-same-split", ["demo", "--data", "{hub}", "--train-split", "train", "--test-split", "train", *TINY_DEMO],
     "--train-split and --eval-split are both 'train'"),
    ("demo-epochs-0", ["demo", "--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    ("demo-batch-size-0", ["demo", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    ("demo-lr-0", ["demo", "--lr", "0"], "argument --lr: must be a finite number > 0"),
    ("demo-max-shift-negative", ["demo", "--data", "{hub}", *TINY_DEMO, "--max-shift", "-1"], "max_shift must be >= 0"),
    ("demo-max-shift-beyond-image", ["demo", "--data", "{hub}", *TINY_DEMO, "--max-shift", "32"],
     "must be smaller than the image"),
    ("demo-column-missing", ["demo", "--data", "{columns}", *TINY_DEMO], "name it with --image-column"),
    ("consistency-missing-path", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}/missing"],
     "is not a file or folder here"),
    ("consistency-empty-folder", ["consistency", *TINY_CONSISTENCY, "--data", "{empty}"], "no images found in"),
    ("consistency-corrupt-image", ["consistency", *TINY_CONSISTENCY, "--data", "{corrupt}"],
     "the file is not an image, or is truncated or damaged"),
    ("consistency-wrong-split", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--split", "tset"],
     "has no split 'tset'; its splits are: test, train"),
    ("consistency-unsplit-validation", ["consistency", *TINY_CONSISTENCY, "--data", "{one_file}", "--split", "validation"],
     "has no named splits, so only 'train' and 'test' exist"),
    ("consistency-no-image-column", ["consistency", *TINY_CONSISTENCY, "--data", "{columns}"],
     "name it with --image-column"),
    ("consistency-named-column-absent", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--image-column", "pic"],
     "no image column 'pic' in this dataset; its columns are: img, label"),
    ("consistency-1000-class-head-on-2-classes", ["consistency", "--model", "resnet18", "--data", "{classes}",
                                                  "--eval-limit", "4", "--device", "cpu"],
     "the model has 1000 classes but"),
    ("consistency-hidden-test-labels", ["consistency", *TINY_CONSISTENCY, "--data", "{hidden}"],
     "[test] has no labels (label -1, as hub datasets mark hidden test labels): evaluate a labelled split, e.g. "
     "--eval-split validation"),
    ("consistency-half-the-labels-hidden", ["consistency", *TINY_CONSISTENCY, "--data", "{half_hidden}"],
     "[test] has 2 of 4 images unlabelled"),  # of the 4 evaluated (--limit 4)
    ("consistency-string-labels", ["consistency", *TINY_CONSISTENCY, "--data", "{string_labels}"],
     "holds strings ('a'...), not class indices: give the dataset a ClassLabel column"),
    ("consistency-fractional-labels", ["consistency", *TINY_CONSISTENCY, "--data", "{fractional_labels}"],
     "holds values that are not whole numbers (e.g. 1.5)"),
    ("consistency-max-shift-0", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--max-shift", "0"],
     "max_shift=0 gives the random, circular, fractional protocol(s) two identical views"),
    ("consistency-crop-with-one-offset", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--protocols", "crop",
                                          "--crop-from", "33", "--image-size", "32"],
     "at least 2 px larger than the crop (two distinct crop offsets), got 33x33 for 32 crops"),
    ("consistency-fixed-size-model-on-other-images", ["consistency", "--model", "vit_tiny_patch16_224", "--num-classes",
                                                      "2", "--eval-limit", "2", "--device", "cpu", "--data", "{hub}"],
     "the model does not take 32x32 images"),
    ("consistency-overflowing-normalisation", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--std",
                                               "1e-38", "1e-38", "1e-38", "--mean", "0", "0", "0"],
     "the model returned non-finite logits (NaN or inf)"),
    ("consistency-image-size-0", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--image-size", "0"],
     "argument --image-size: must be >= 1, got 0"),
    ("consistency-batch-size-0", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--batch-size", "0"],
     "argument --batch-size: must be >= 1, got 0"),
    ("consistency-missing-checkpoint", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}",
                                        "--checkpoint", "{hub}/missing.pth"], "missing.pth"),
    ("consistency-checkpoint-of-another-model", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}",
                                                 "--checkpoint", "{resnet34}"], "resnet34.pth does not fit resnet18"),
    ("consistency-checkpoint-without-weights", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}",
                                                "--checkpoint", "{no_weights}"], "has no weights"),
    ("consistency-checkpoint-not-torch", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--checkpoint", "{notes}"],
     "as a torch checkpoint"),
    ("channels-plain-state-dict", ["channels", "--checkpoint", "{resnet34}", "--data", "{hub}"],
     "is a plain state_dict that does not name its architecture: pass --model NAME"),
    ("locate-grid-1", ["locate", "--grid", "1"], "argument --grid: must be >= 2, got 1"),
    ("locate-passes-0", ["locate", "--passes", "0"], "argument --passes: must be >= 1, got 0"),
    ("locate-unknown-trunk", ["locate", "--data", "{hub}", "--trunk", "resnet1800"], "timm has no model 'gapnet_resnet1800'"),
    ("consistency-unknown-model", ["consistency", "--model", "resnet1800", "--data", "{hub}"],
     "timm has no model 'resnet1800'"),
    ("consistency-unknown-protocol", ["consistency", *TINY_CONSISTENCY, "--data", "{hub}", "--protocols", "random,zhang"],
     "unknown protocol(s) zhang; choose from random, circular, random8, random16, circular_full"),
    ("channels-top-0", ["channels", "--model", "resnet18", "--data", "{hub}", "--top", "0"],
     "argument --top: must be >= 1, got 0"),
    ("attack-counts-beyond-the-layer", ["attack", "--model", "fcn_resnet18", "--data", "{hub}", "--test-split", "train",
                                        "--counts", "4096", "--draws", "1", "--epochs", "1", "--device", "cpu"],
     "counts go up to 4096 but"),
    ("attack-too-few-test-images", ["attack", "--model", "fcn_resnet18", "--data", "{hub}", "--epochs", "1",
                                    "--device", "cpu"], "6 images make at most 0 mosaics of 3x3 tiles"),
]


@pytest.mark.parametrize("case,argv,fragment", REFUSED_COMMANDS, ids=[c[0] for c in REFUSED_COMMANDS])
def test_command_refuses_with_one_line(case, argv, fragment, data, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [arg.format(**data) for arg in argv] + ["--out", str(out)]
    code, err, _ = run_cli(argv, capsys)
    assert_one_line_error(code, err, fragment)
    assert not out.exists()  # nothing written


def test_without_a_test_split_the_validation_split_is_evaluated_and_named(data, tmp_path, capsys):
    """Hub datasets and ImageNet-style folders have train + validation / val: that is what gets evaluated."""
    out = tmp_path / "out"
    code, err, stdout = run_cli(["consistency", *TINY_CONSISTENCY, "--data", str(data["train_val"]), "--out", str(out)],
                                capsys)
    assert code == 0, err
    result = json.loads((out / "consistency.json").read_text())
    assert result["eval_split"] == "val" and "split 'val'" in result["data"] and "split 'val'" in stdout
    for names, expected in ((["train", "validation", "val"], "validation"), (["val", "test"], "test"),
                            (["val"], "val")):
        source = tmp_path / "-".join(names)
        for name in names:
            write_image_folder(source / name, 2)
        assert eval_split(str(source)) == expected
    assert eval_split(str(data["train_extra"]), "extra") == "extra"  # a named split is used as named


def test_consistency_crop_fractional_and_worst_on_larger_images(tmp_path, capsys):
    """Zhang's crop protocol on an image folder of images larger than the model's input, beside the fractional and
    worst-case protocols, in one command."""
    from PIL import Image

    for i in range(6):
        target = tmp_path / "data" / "test" / "ab"[i % 2] / f"{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (60, 48, 3), dtype=np.uint8)).save(target)
    out = tmp_path / "out"
    code, err, stdout = run_cli(["consistency", "--model", "resnet18", "--num-classes", "2", "--data",
                                 str(tmp_path / "data"), "--crop-from", "40", "--image-size", "32", "--max-shift", "2",
                                 "--protocols", "crop,fractional,random_worst,crop_worst", "--out", str(out)], capsys)
    assert code == 0, err
    results = json.loads((out / "consistency.json").read_text())["results"]
    assert results["samples"] == 6
    for key in ("consistency_crop", "consistency_fractional", "consistency_random_worst", "accuracy_crop_worst"):
        low, high = results[f"{key}_ci95"]
        assert 0 <= low <= results[key] <= high <= 100
    assert "consistency_crop" in stdout


@pytest.mark.parametrize("command", [["demo", *TINY_DEMO], ["consistency", *TINY_CONSISTENCY, "--data", "x"]])
def test_an_unusable_out_is_refused_before_any_work(command, tmp_path, capsys):
    occupied = tmp_path / "results.txt"
    occupied.write_text("keep me")
    for out, fragment in ((occupied, "is a file, not a folder"), (occupied / "sub", "which is a file")):
        code, err, stdout = run_cli([*command, "--out", str(out)], capsys)
        assert_one_line_error(code, err, fragment)
        assert stdout == ""  # refused before loading data or training anything
    assert occupied.read_text() == "keep me"


def _without_the_root_override() -> None:
    """In the child before it runs: drop root's overrides of file permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH) from the capability bounding set, so the program root runs next has them in no set and
    meets the permission bits like any user (also ``os.access``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused: cannot run as root without overrides")


def test_an_out_without_write_permission_is_refused(tmp_path):
    """``augshift demo --out`` in a folder its user may only read, as a process of its own (as root: root without
    the capability that lets it write anywhere)."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = subprocess.run([sys.executable, "-m", "augshift.cli", "demo", "--out", str(locked / "demo")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            preexec_fn=_without_the_root_override if os.geteuid() == 0 else None)
    assert_one_line_error(result.returncode, result.stderr.strip().splitlines(), "permission denied")
    assert result.stdout == "" and list(locked.iterdir()) == []  # refused before any work


def test_save_model_that_is_a_folder_is_refused(tmp_path, capsys):
    code, err, _ = run_cli(["locate", "--save-model", str(tmp_path), "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, "--save-model")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_is_refused(data, tmp_path, capsys):
    code, err, _ = run_cli(["consistency", *TINY_CONSISTENCY[:-2], "--device", "cuda", "--data", str(data["hub"])], capsys)
    assert_one_line_error(code, err, "CUDA is not available")


def test_internal_errors_keep_their_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr("augshift.cli.demo.run", broken)
    with pytest.raises(KeyError):  # not turned into a one-line usage error
        main(["demo", "--out", "unused"])


def test_path_errors_are_user_errors_only_for_paths_the_user_named(tmp_path, capsys):
    named = tmp_path / "named.pt"

    def missing(path):
        def command():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return command

    assert run_command("augshift", missing(named), ["--checkpoint", str(named)]) == 2
    assert capsys.readouterr().err == f"augshift: error: No such file or directory: {named}\n"
    assert run_command("augshift", missing(tmp_path / "sub" / "x"), [f"--out={tmp_path}"]) == 2  # inside a named folder
    with pytest.raises(FileNotFoundError):  # a file the user never named: a bug, with its traceback
        run_command("augshift", missing("/usr/share/augshift/internal.json"), ["--checkpoint", str(named)])


# ---------------------------------------------------------------------------------------------- splits (item 2)

def test_demo_on_one_parquet_file_trains_and_tests_on_disjoint_images(data, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(data["one_file"]), "--out", str(out), *TINY_DEMO]) == 0
    summary = json.loads((out / "demo.json").read_text())
    assert summary["results"]["plain"]["samples"] == 4  # every 5th of 20 images
    assert "no named splits" in summary["data"] and "every 5th row" in summary["data"]
    train, _ = load_split(str(data["one_file"]), "train")
    test, _ = load_split(str(data["one_file"]), "test")
    assert len(train) + len(test) == 20
    assert not {img.numpy().tobytes() for img in train} & {img.numpy().tobytes() for img in test}
    assert set(summary["files"]) == {"demo.md", "consistency_vs_shift.png"}  # the manifest of the same run


def test_an_image_folder_without_splits_is_split_the_same_way(data):
    test = load_image_dataset(str(data["classes"]), "test")
    train = load_image_dataset(str(data["classes"]), "train")
    assert (len(train), len(test)) == (16, 4)
    assert "every 5th row" in describe_split(str(data["classes"]), "test")
    again = load_image_dataset(str(data["classes"]), "test")
    assert torch.equal(to_tensors(test)[0], to_tensors(again)[0])  # deterministic


def test_demo_refuses_a_test_split_made_of_training_images(tmp_path, capsys):
    write_image_folder(tmp_path / "copy" / "train", 10)
    write_image_folder(tmp_path / "copy" / "test", 10)  # the same images
    code, err, _ = run_cli(["demo", "--data", str(tmp_path / "copy"), "--out", str(tmp_path / "o"), *TINY_DEMO], capsys)
    assert_one_line_error(code, err, "every test image")
    assert not (tmp_path / "o").exists()


def test_parquet_without_hugging_face_metadata_is_decoded(data):
    images, labels = load_split(str(data["no_metadata"]), "train")
    assert images.shape == (8, 3, SIZE, SIZE) and labels.tolist() == [row % 2 for row in range(10) if row % 5]  # train rows


def test_consistency_records_the_images_it_evaluated(data, tmp_path, capsys):
    out = tmp_path / "c"
    argv = ["consistency", *TINY_CONSISTENCY, "--data", str(data["one_file"]), "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "consistency.json").read_text())
    assert result["data"].startswith("first 4 images of split 'test' of") and result["results"]["samples"] == 4
    assert set(result["files"]) == {"consistency.md"}


# ---------------------------------------------------------------------------------------------- result files (item 9)

def test_result_files_are_readable_by_others(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_interrupted_result_leaves_the_previous_one_whole(tmp_path):
    for name in ("r.md", "r.json"):
        (tmp_path / name).write_text("old run")
    with pytest.raises(KeyboardInterrupt):
        with result_unit(tmp_path, manifest="r.json") as staging:
            (staging / "r.md").write_text("new run")
            raise KeyboardInterrupt  # between the two writes
    assert [p.read_text() for p in sorted(tmp_path.iterdir())] == ["old run", "old run"]  # no staging left either
    with result_unit(tmp_path, manifest="r.json") as staging:
        (staging / "r.md").write_text("new run")
        (staging / "r.json").write_text("new run")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"r.md": "new run", "r.json": "new run"}


# ---------------------------------------------------------------------------------------------- Python API

class NaNHead(torch.nn.Module):
    """A 'diverged' classifier: pooled features through a linear layer whose weights are NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)
        torch.nn.init.constant_(self.fc.weight, float("nan"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean(dim=(2, 3)))


def nan_batch_loss(data: dict) -> None:
    images = torch.randn(4, 3, SIZE, SIZE)
    images[0] = float("nan")
    loss_parts(AugShift(create_small_cnn(3, width=4))(images, torch.tensor([0, 1, 2, 0])))


def diverging_fit(data: dict) -> None:
    model = create_small_cnn(3, width=4)
    next(model.parameters()).data.fill_(float("nan"))  # the first convolution: every output is NaN
    images = torch.randint(0, 256, (8, 3, SIZE, SIZE), dtype=torch.uint8)
    batches = TensorBatches(images, torch.arange(8) % 3, batch_size=4, seed=0,
                            normalization=Normalization.of_images(images, source="the images"))
    config = TrainConfig(epochs=1, batch_size=4)
    fit(Trainer(model, config, steps_per_epoch=batches.steps), batches.source(), progress=False)


def vgg11_at_224(data: dict) -> None:
    import torchvision

    model = torchvision.models.vgg11(num_classes=2).eval()
    features = PooledFeatures(model)
    with torch.no_grad(), features.capture():
        model(torch.randn(1, 3, 224, 224))


API_CASES = [
    ("metric-nan-weights", lambda data: ShiftConsistency(max_shift=1).update(NaNHead().eval(), torch.randn(2, 3, 8, 8),
                                                                        torch.tensor([0, 1])),
     ValueError, "non-finite logits"),
    ("metric-nan-inputs", lambda data: ShiftConsistency(max_shift=1).update(
        create_small_cnn(3, width=4).eval(), torch.full((2, 3, 8, 8), float("nan")), torch.tensor([0, 1])),
     ValueError, "non-finite logits"),
    ("augshift-loss-nan-batch", nan_batch_loss, FloatingPointError, "the AugShift loss is not finite"),
    ("fit-diverging-run", diverging_fit, FloatingPointError, "the loss became non-finite in epoch 1"),
    ("config-weight-nan", lambda data: AugShiftConfig(weight=float("nan")), UsageError, "weight must be a finite number"),
    ("config-max-shift-float", lambda data: AugShiftConfig(max_shift=4.0), TypeError, "whole number of pixels (int)"),
    ("augshift-max-shift-float", lambda data: AugShift(create_small_cnn(3), max_shift=4.0), TypeError, "whole number of pixels"),
    ("config-max-shift-negative", lambda data: AugShiftConfig(max_shift=-1), UsageError, "max_shift must be >= 0"),
    ("train-config-epochs-0", lambda data: TrainConfig(epochs=0), UsageError, "epochs must be >= 1"),
    ("pooled-features-vgg11", vgg11_at_224, UsageError, "the flattened 512 x 7 x 7 map of its module 'avgpool'"),
    ("unsplit-source-other-split", lambda data: load_image_dataset(str(data["one_file"]), "validation"), UsageError,
     "has no named splits"),
    ("named-split-missing", lambda data: load_image_dataset(str(data["train_val"]), "test"), UsageError,
     "its splits are: train, val"),
    ("column-message-names-both-fixes", lambda data: load_split(str(data["columns"]), "test"), UsageError,
     "name it with --image-column (in Python: image_column=)"),
    ("hub-name-offline", lambda data: load_image_dataset("nobody/no-such-dataset", "test"), UsageError,
     "no Hugging Face dataset of that name could be loaded"),
    ("evaluation-of-no-batches", lambda data: evaluate_shift_consistency(create_small_cnn(3, width=4), []).accuracy,
     UsageError, "no samples were evaluated"),
    ("metric-indices-wrong-shape", lambda data: ShiftConsistency(max_shift=1).update(
        create_small_cnn(3, width=4).eval(), torch.randn(2, 3, 8, 8), torch.tensor([0, 1]), torch.tensor([0])),
     UsageError, "indices must be the 2 samples' integer dataset indices"),
]


@pytest.mark.parametrize("case,call,error,fragment", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses(case, call, error, fragment, data):
    with pytest.raises(error) as raised:
        call(data)
    assert fragment in str(raised.value)


def test_usage_errors_are_value_errors():
    assert issubclass(UsageError, ValueError)  # code catching ValueError keeps working


# ---------------------------------------------------------------------------------------------- augshift-timm

def test_timm_launcher_refuses_a_folder_and_a_foreign_script_before_running_it(tmp_path, capsys):
    from augshift.integrations.timm import main as timm_main

    assert timm_main([str(tmp_path)]) == 2
    assert "is a folder; give the path of your timm train.py file" in capsys.readouterr().err
    foreign = tmp_path / "foreign.py"
    marker = tmp_path / "ran"
    foreign.write_text(f"open({str(marker)!r}, 'w').write('top-level code ran')\n")
    assert timm_main([str(foreign)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augshift-timm: error:") and "no module-level parser" in err[0]
    assert not marker.exists()  # refused before any of its code ran


def test_timm_launcher_refuses_augshift_options_it_would_ignore(timm_train_py, capsys, monkeypatch):
    from augshift.integrations.timm import main as timm_main

    monkeypatch.chdir(timm_train_py.parent)
    for bad, fragment in ((["--augshift-max-shift", "-1"], "--augshift-max-shift would be ignored: add --augshift"),
                          (["--augshift-weight", "0.5"], "--augshift-weight would be ignored")):
        with pytest.raises(SystemExit) as done:
            timm_main([str(timm_train_py), "--data-dir", str(timm_train_py.parent), *bad])
        assert done.value.code == 2 and fragment in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- Accelerate example

def test_accelerate_resume_refuses_a_misspelled_output(tmp_path, capsys):
    from augshift.integrations.accelerate.train import main as accelerate_main

    argv = ["--output", str(tmp_path / "ouptut"), "--resume"]
    assert run_command("train.py", lambda: accelerate_main(argv), argv) == 2
    assert "has no checkpoints (checkpoints/epoch_<n>) to resume from; check --output" in capsys.readouterr().err
    assert not (tmp_path / "ouptut").exists()


def test_accelerate_resume_after_a_kill_between_checkpoint_and_metrics(data, tmp_path):
    from accelerate.state import AcceleratorState, GradientState

    from augshift.integrations.accelerate.train import main as accelerate_main

    args = ["--data", str(data["hub"]), "--cpu", "--model", "resnet18", "--train-limit", "8", "--eval-limit", "4",
            "--batch-size", "4", "--eval-batch-size", "4", "--output", str(tmp_path)]
    try:
        accelerate_main(args + ["--epochs", "1"])
        (tmp_path / "metrics.json").unlink()  # killed after the checkpoint, before metrics.json
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        accelerate_main(args + ["--epochs", "2", "--resume"])
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    epochs = json.loads((tmp_path / "metrics.json").read_text())["epochs"]
    assert [row["epoch"] for row in epochs] == [1, 2]


def test_the_crop_protocol_works_for_a_fixed_size_model(tmp_path, capsys):
    """Zhang's protocol on a model that takes only 224 x 224 inputs: 256 px images, 224 px crops."""
    folder = tmp_path / "images"
    for i in range(2):
        target = folder / "test" / "ab"[i % 2] / f"{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(target)
    code, err, out = run_cli(["consistency", "--model", "vit_tiny_patch16_224", "--num-classes", "2", "--data",
                              str(folder), "--crop-from", "256", "--image-size", "224", "--protocols", "crop",
                              "--device", "cpu", "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "consistency.json").read_text())["results"]
    assert report["samples"] == 2 and 0 <= report["consistency_crop"] <= 100


def test_a_protocol_with_two_identical_views_is_refused_in_the_api():
    with pytest.raises(UsageError, match="max_shift=0 gives the random protocol"):
        ShiftConsistency(max_shift=0, protocols=("random",))
    assert ShiftConsistency(max_shift=0, protocols=("random8",)).max_shift == 0  # a fixed range of its own
    metric = ShiftConsistency(protocols=("crop",), crop_size=32)
    with pytest.raises(UsageError, match="two distinct crop offsets"):
        metric.update(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2)),
                      torch.randn(2, 3, 33, 33), torch.zeros(2, dtype=torch.long), torch.arange(2))


# ---------------------------------------------------------------------------------------------- issue 32

def test_result_units_in_one_folder_never_share_or_leave_a_file(data, tmp_path, capsys):
    """Two commands into one --out keep two whole units; a rerun of the same result replaces it whole (its old figure
    goes when the new run writes none); a result whose file another manifest lists is refused; every file in the
    folder is listed by exactly one manifest, with its hash."""
    import hashlib

    out = tmp_path / "out"
    consistency = ["consistency", *TINY_CONSISTENCY, "--data", str(data["hub"]), "--out", str(out)]
    assert main(["demo", "--data", str(data["hub"]), *TINY_DEMO, "--out", str(out)]) == 0
    assert main([*consistency, "--curve-max-shift", "1"]) == 0
    assert (out / "consistency.png").is_file()
    assert main(consistency) == 0  # the same result again, without a curve
    assert not (out / "consistency.png").exists()
    manifests = {p.name: json.loads(p.read_text())["files"] for p in out.glob("*.json")}
    listed = [name for files in manifests.values() for name in files]
    assert sorted(listed) == sorted(p.name for p in out.iterdir() if p.name not in manifests)  # each file once
    for files in manifests.values():
        assert all(hashlib.sha256((out / name).read_bytes()).hexdigest() == digest for name, digest in files.items())
    (out / "other.json").write_text(json.dumps({"files": {"consistency.md": "0"}}))  # a unit owning that name
    code, err, _ = run_cli(consistency, capsys)
    assert_one_line_error(code, err, "holds another result whose files this one would replace (consistency.md")


def truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    image(0).resize((64, 64)).save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def transparent_png(path: Path) -> None:
    pixels = np.full((SIZE, SIZE, 4), 255, dtype=np.uint8)
    pixels[0, 0, 3] = 0
    Image.fromarray(pixels, "RGBA").save(path)


def wide_float_tiff(path: Path) -> None:
    Image.fromarray(np.full((SIZE, SIZE), 1000.0, dtype=np.float32), "F").save(path)


@pytest.mark.parametrize("write,fragment", [
    (truncated_jpeg, "is not an image, or is truncated or damaged"),
    (transparent_png, "has 1 transparent pixels, whose colour is undefined"),
    (wide_float_tiff, "holds F values in [1000, 1000], not whole numbers in 0-255"),
], ids=["truncated-jpeg", "transparent-png", "float-tiff"])
def test_an_image_that_cannot_be_decoded_faithfully_is_refused_naming_it(write, fragment, data, tmp_path, capsys):
    folder = write_image_folder(tmp_path / "images", 6)
    bad = folder / "a" / {"truncated_jpeg": "bad.jpg", "transparent_png": "bad.png", "wide_float_tiff": "bad.tiff"}[
        write.__name__]
    write(bad)
    code, err, _ = run_cli(["consistency", *TINY_CONSISTENCY[:4], "--data", str(folder), "--split", "train",
                            "--max-shift", "1", "--device", "cpu", "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, fragment)
    assert str(bad) in err[-1] and not (tmp_path / "out").exists()


def test_images_of_other_modes_are_decoded_as_they_look():
    """Against hand conversions: 16-bit grey scaled from its full range, palette and CMYK by their colours, opaque
    alpha dropped, whole-number 32-bit grey kept."""
    from augshift.data.images import decode_images

    grey16 = np.array([[0, 257], [65535, 32896]], dtype=np.uint16)
    palette = Image.new("P", (2, 2))
    palette.putpalette([10, 20, 30] * 256)
    opaque = np.dstack([np.full((2, 2, 3), 77, np.uint8), np.full((2, 2), 255, np.uint8)])
    decoded = decode_images([Image.fromarray(grey16), palette, Image.new("CMYK", (2, 2), (0, 0, 0, 0)),
                             Image.fromarray(opaque, "RGBA"), Image.fromarray(np.full((2, 2), 9, np.int32), "I")])
    assert decoded[0, 0].tolist() == [[0, 1], [255, 128]] and decoded[0].eq(decoded[0, :1]).all()
    assert decoded[1, :, 0, 0].tolist() == [10, 20, 30]
    assert decoded[2].eq(255).all()  # no ink is white
    assert decoded[3].eq(77).all() and decoded[4].eq(9).all()


def test_pretrained_weights_that_cannot_be_downloaded_are_one_line(monkeypatch, data, tmp_path, capsys):
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", offline)
    for model in ("resnet10t", "torchvision/resnet18"):  # timm: HF offline and no cached copy; torchvision: no network
        code, err, _ = run_cli(["consistency", "--model", model, "--pretrained", "--num-classes", "2", "--data",
                                str(data["hub"]), "--eval-limit", "2", "--device", "cpu"], capsys)
        assert_one_line_error(code, err, f"cannot get the pretrained weights of {model}")


def test_the_shift_functions_refuse_offsets_that_are_not_finite_integers():
    from augshift import fractional_shift, shift

    images = torch.zeros(2, 3, 8, 8)
    for bad in (1.5, torch.tensor([0.0, 1.0]), torch.tensor([float("nan"), 0.0])):
        with pytest.raises(TypeError, match="dx must"):
            shift(images, bad, 0)
    for bad in (float("nan"), float("inf"), torch.tensor([0.5, -float("inf")])):
        with pytest.raises(UsageError, match="dy must be finite offsets in pixels"):
            fractional_shift(images, 0.5, bad)
