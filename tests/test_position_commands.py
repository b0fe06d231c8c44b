"""``augshift channels`` / ``augshift attack`` on the user's own models: plain timm state_dicts, timm train.py and
Accelerate output folders, hub weights (offline, from a filled cache), torchvision segmentation models on image +
mask folders."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import timm
import torch
import torchvision
import yaml

from helpers import mask_folder

from augshift.cli import build_parser, main
from augshift.data import load_split
from augshift.models import load_model
from augshift.errors import UsageError


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


@pytest.fixture(scope="module")
def resnet18_10() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet18", num_classes=10)


def test_channels_of_a_plain_timm_state_dict(cifar10_dir, tmp_path, resnet18_10):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_10.state_dict(), path)
    assert main(["channels", "--model", "resnet18", "--checkpoint", str(path), "--data", str(cifar10_dir),
                 "--eval-limit", "6", "--top", "4", "--out", str(tmp_path)]) == 0
    # layer4 is 1 x 1 for 32 px images: the last stage with a spatial extent is ranked, and the report says why
    result = json.loads((tmp_path / "channels-layer3-hflip.json").read_text())
    ranking = result["ranking"]
    assert ranking["layer"] == "layer3" and ranking["num_images"] == 6 and sorted(ranking["channels"]) == list(range(256))
    assert "layer4's maps are 1x1" in result["layer_note"] and result["layer_size"] == [2, 2]
    images, _ = load_split(str(cifar10_dir), "test", limit=6)  # a plain state_dict records no normalisation
    own = (images.double() / 255).mean(dim=(0, 2, 3))
    assert np.allclose(result["normalization"]["mean"], own.numpy()) and "own statistics" in result["normalization"]["source"]
    assert len(result["top_channel_maps"]) == 4 and np.array(result["top_channel_maps"][str(ranking["channels"][0])]).shape == (2, 2)
    markdown = (tmp_path / "channels-layer3-hflip.md").read_text()
    assert f"| 1 | {ranking['channels'][0]} |" in markdown and "layer4's maps are 1x1" in markdown
    for png in ("channels-layer3-hflip.png", "channels-layer3-hflip-maps.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG" and png in result["files"]  # one unit, in the manifest
    loaded = load_model(str(path), model="resnet18")  # 10 classes, from the head's shape
    assert loaded.meta == {} and loaded.model.num_classes == 10 and same_weights(loaded.model, resnet18_10)
    # a layer asked for whose maps are 1 x 1: ranked, no maps drawn, said so
    assert main(["channels", "--model", "resnet18", "--checkpoint", str(path), "--data", str(cifar10_dir),
                 "--eval-limit", "6", "--top", "4", "--layer", "layer4", "--out", str(tmp_path / "l4")]) == 0
    result = json.loads((tmp_path / "l4" / "channels-layer4-hflip.json").read_text())
    assert "no spatial extent" in result["layer_note"] and "top_channel_maps" not in result
    assert not (tmp_path / "l4" / "channels-layer4-hflip-maps.png").exists()
    assert "No maps" in (tmp_path / "l4" / "channels-layer4-hflip.md").read_text()


def test_plain_state_dict_errors_name_the_fix(tmp_path, resnet18_10):
    path = tmp_path / "r18.pth"
    torch.save({"model": resnet18_10.state_dict()}, path)
    with pytest.raises(UsageError, match="--model NAME"):
        load_model(str(path))
    with pytest.raises(UsageError, match="does not fit resnet34: missing layer"):
        load_model(str(path), model="resnet34")
    with pytest.raises(UsageError, match="does not exist"):
        load_model(str(tmp_path / "nope.pth"), model="resnet18")
    with pytest.raises(UsageError, match="--pretrained"):
        load_model(None)


def test_timm_train_py_and_accelerate_output_folders(tmp_path, resnet18_10):
    run = tmp_path / "train" / "20250101-resnet18"
    run.mkdir(parents=True)
    (run / "args.yaml").write_text(yaml.safe_dump({"model": "resnet18", "num_classes": 10, "lr": 0.1}))
    torch.save({"epoch": 3, "arch": "resnet18", "state_dict": {f"module.{k}": v for k, v in resnet18_10.state_dict().items()},
                "args": argparse.Namespace(model="resnet18"), "metric": 50.0}, run / "model_best.pth.tar")
    loaded = load_model(str(run))
    assert loaded.model.num_classes == 10 and same_weights(loaded.model, resnet18_10)
    # train.py ran without --mean / --std: it normalised with the model's data config, and so do we
    assert loaded.normalization.mean == timm.data.IMAGENET_DEFAULT_MEAN and "train.py" in loaded.normalization.source
    loaded = load_model(str(run / "model_best.pth.tar"))  # the file alone names its arch (and keeps its args)
    assert same_weights(loaded.model, resnet18_10) and loaded.normalization.mean == timm.data.IMAGENET_DEFAULT_MEAN
    (run / "args.yaml").write_text(yaml.safe_dump({"model": "resnet18", "num_classes": 10, "mean": [0.5, 0.4, 0.3],
                                                   "std": [0.2, 0.2, 0.2]}))
    assert load_model(str(run)).normalization.mean == (0.5, 0.4, 0.3)

    from safetensors.torch import save_file

    out = tmp_path / "accelerate"
    out.mkdir()
    save_file({k: v.contiguous() for k, v in resnet18_10.state_dict().items()}, str(out / "model.safetensors"))
    recorded = {"mean": [0.1, 0.2, 0.3], "std": [0.3, 0.3, 0.3], "source": "the first 100 training images"}
    (out / "metrics.json").write_text(json.dumps({"args": {"model": "resnet18"}, "normalization": recorded,
                                                  "epochs": []}))
    loaded = load_model(str(out))
    assert same_weights(loaded.model, resnet18_10) and loaded.normalization.to_dict() == recorded
    with pytest.raises(UsageError, match="model_best.pth.tar"):
        load_model(str(tmp_path / "train"))


def test_pretrained_goes_through_timm_hub_path_offline(tmp_path, monkeypatch):
    """``--pretrained`` is timm's real Hugging Face hub path; offline, a filled hub cache stands in for the network."""
    import huggingface_hub.constants
    from safetensors.torch import save_file

    hub_id = timm.create_model("resnet18").pretrained_cfg["hf_hub_id"]
    repo = tmp_path / ("models--" + hub_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.manual_seed(5)
    hub = timm.create_model("resnet18")
    save_file(hub.state_dict(), str(repo / "snapshots" / commit / "model.safetensors"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    loaded = load_model(None, model="resnet18", pretrained=True)
    assert loaded.meta == {} and same_weights(loaded.model, hub) and loaded.weights == "pretrained"
    assert loaded.normalization.mean == timm.data.IMAGENET_DEFAULT_MEAN  # the pretrained weights' own statistics
    with pytest.raises(UsageError, match="one of them"):
        load_model(str(tmp_path), model="resnet18", pretrained=True)


def test_attack_torchvision_deeplab_state_dict_on_mask_folders(tmp_path):
    mask_folder(tmp_path / "data")
    torch.manual_seed(0)
    net = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3, aux_loss=True)
    torch.save(net.state_dict(), tmp_path / "deeplab.pth")
    out = tmp_path / "out"
    assert main(["attack", "--model", "deeplabv3_mobilenet_v3_large", "--checkpoint", str(tmp_path / "deeplab.pth"),
                 "--data", str(tmp_path / "data"), "--test-split", "val", "--counts", "100", "--draws", "1",
                 "--out", str(out)]) == 0
    result = json.loads((out / "attack-backbone-hflip.json").read_text())
    curve = result["curve"]
    assert result["test_images"] == 4 and curve["layer"] == "backbone" and curve["counts"] == [100]
    assert set(curve["top"]) == {"miou", "pixel_accuracy", "miou_left", "miou_right", "miou_center"}
    assert len(curve["ranking"]["channels"]) == 960 and all(len(d) == 1 for d in curve["random"]["miou"])
    assert result["regions"] == "paper" and result["ignore_index"] == 255
    assert "4 images with masks" in (out / "attack-backbone-hflip.md").read_text()
    argv = ["attack", "--model", "deeplabv3_mobilenet_v3_large", "--checkpoint", str(tmp_path / "deeplab.pth"),
            "--data", str(tmp_path / "data"), "--test-split", "val", "--ignore-index", "0", "--counts", "4"]
    args = build_parser().parse_args(argv)
    args.argv = argv
    with pytest.raises(UsageError, match="pass --ignore-index"):  # a user mistake: the CLI prints it as one line
        args.run(args)


def test_attack_trains_a_torchvision_segmenter_on_mosaics_and_reloads_it(cifar10_dir, tmp_path):
    data, out, saved = str(cifar10_dir), str(tmp_path), str(tmp_path / "lraspp.pt")
    assert main(["attack", "--model", "lraspp_mobilenet_v3_large", "--data", data, "--train-limit", "36",
                 "--eval-limit", "18", "--epochs", "1", "--counts", "4", "--draws", "1", "--save-model", saved,
                 "--out", out]) == 0
    first = json.loads((tmp_path / "attack-backbone-hflip.json").read_text())
    assert first["model"]["model"] == "lraspp_mobilenet_v3_large" and first["test_images"] == 2
    assert main(["attack", "--checkpoint", saved, "--data", data, "--eval-limit", "18", "--region", "left",
                 "--counts", "4", "--draws", "1", "--out", out]) == 0
    second = json.loads((tmp_path / "attack-backbone-hflip-left.json").read_text())
    assert second["curve"]["baseline"] == first["curve"]["baseline"]  # the same model, the same mosaics
    assert second["curve"]["ranking"]["region"] == "left"


def readme_command(prefix: str) -> list[str]:
    """The README's ``augshift ...`` line starting with ``prefix``, as arguments."""
    import shlex

    from helpers import DOCUMENTS

    readme = "\n".join(page.read_text() for page in DOCUMENTS).replace("\\\n", " ")  # continuation lines joined
    lines = [line for line in readme.splitlines() if line.startswith(prefix)]
    assert lines, f"the README has no line starting with {prefix!r}"
    return shlex.split(lines[0])[1:]


def test_readme_channels_and_attack_commands_run(cifar10_dir, tmp_path, monkeypatch, resnet18_10):
    monkeypatch.chdir(tmp_path)
    torch.save(resnet18_10.state_dict(), "resnet18.pth")  # the README's plain timm checkpoint
    channels = [str(cifar10_dir) if a == "data/cifar10" else a for a in readme_command(
        "augshift channels --model resnet18 --checkpoint resnet18.pth")]
    assert main([*channels, "--eval-limit", "8"]) == 0
    assert json.loads(next((tmp_path / "results").rglob("channels-layer3-hflip.json")).read_text())["ranking"]["num_images"] == 8
    args = readme_command("augshift attack --model deeplabv3_mobilenet_v3_large --checkpoint")
    checkpoint, data = args[args.index("--checkpoint") + 1], args[args.index("--data") + 1]
    mask_folder(tmp_path / data)
    torch.save(torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=19).state_dict(), checkpoint)
    assert main([*args, "--counts", "100", "--draws", "1"]) == 0
    result = json.loads(next((tmp_path / "results").rglob("attack-backbone-hflip.json")).read_text())
    assert result["curve"]["counts"] == [100] and result["test_images"] == 4
