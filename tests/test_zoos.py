"""The zoos (augshift/models/zoos/, one file each): every zoo claims its own names and only them, the dispatch builds
what the zoo's own library builds, each answers for its own models (normalisation, logits, stages, folders), and a
zoo added to the registry is dispatched to with nothing else changed."""
from __future__ import annotations

import doctest
import re
import importlib
from typing import Any, Optional

import pytest
import timm
import torch
import torchvision
from torch import nn

import augshift.models  # noqa: F401  (registers the project's timm models)
from augshift.data import Normalization
from augshift.errors import UsageError
from augshift.models import create_model, load_model, pretrained_normalization
from augshift import logits_of
from augshift.models.checkpoints import read_checkpoint
from augshift.models import zoos
from augshift.models.zoos import ZOOS, Zoo, register_zoo, supported_models, zoo_of
from augshift.outputs import LOGITS_KEYS, MODEL_CONTRACT

TIMM, TORCHVISION, TRANSFORMERS = zoos.timm.ZOO, zoos.torchvision.ZOO, zoos.transformers.ZOO

CLAIMS = [  # (name, task, the zoo that builds it)
    ("resnet18", "classification", TIMM),
    ("resnet18.a1_in1k", None, TIMM),
    ("gapnet_resnet18", "classification", TIMM),  # the project's, registered with timm
    ("fcn_resnet18", "segmentation", TIMM),  # the project's FCN: torchvision has no segmenter of that name
    ("fcn_resnet50", "classification", TIMM),  # a segmenter's name asked for as a classifier: timm's (and refused)
    ("torchvision/resnet18", "classification", TORCHVISION),
    ("torchvision/fcn_resnet50", "segmentation", TORCHVISION),
    ("fcn_resnet50", "segmentation", TORCHVISION),
    ("lraspp_mobilenet_v3_large", None, TORCHVISION),  # a name alone (its normalisation): any task's
    ("hf:microsoft/resnet-18", "classification", TRANSFORMERS),
    ("hf:/some/save_pretrained/folder", "segmentation", TRANSFORMERS),
    ("hf:torchvision/resnet18", None, TRANSFORMERS),
]


@pytest.mark.parametrize(("name", "task", "zoo"), CLAIMS)
def test_each_name_goes_to_its_zoo_and_no_other_zoo_claims_it(name, task, zoo):
    assert zoo_of(name, task=task) is zoo
    others = [other for other in (TORCHVISION, TRANSFORMERS) if other is not zoo and other.claims(name, task=task)]
    assert others == []  # the zoos with prefixes claim only their own names; timm takes the rest


def test_the_registry_asks_the_prefixed_zoos_before_timm_which_takes_the_rest():
    assert ZOOS[-1] is TIMM and set(ZOOS) == {TIMM, TORCHVISION, TRANSFORMERS}
    with pytest.raises(UsageError, match=r"timm has no model 'no_such_net' \(for torchvision write "
                                         r"torchvision/no_such_net, for transformers hf:<id or folder>\)"):
        create_model("no_such_net", 3)
    with pytest.raises(UsageError, match="torchvision has no classifier 'no_such_net'"):
        create_model("torchvision/no_such_net", 3)


def test_the_list_of_what_is_supported_is_made_of_the_zoos_in_its_old_words():
    assert supported_models() == (
        "timm models (by name, e.g. resnet18), torchvision classifiers and segmenters (torchvision/<name>), "
        "Hugging Face transformers image models (hf:<hub id or save_pretrained folder>: ResNet, ConvNeXt, ViT, "
        "Swin, ...)")
    with pytest.raises(UsageError, match=r"supported: timm models .*, Hugging Face transformers image models"):
        create_model("no_such_net", 3)


def test_a_timm_hub_name_reaches_timm_instead_of_being_refused_by_name(tmp_path, monkeypatch):
    """timm.is_model is false for ``hf-hub:`` names, which timm.create_model resolves from the hub (here a local hub
    cache, offline): the zoo hands them to timm."""
    from safetensors.torch import save_file

    repo = tmp_path / "hub" / "models--acme--tiny-resnet"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "config.json").write_text('{"architecture": "resnet18", "num_classes": 7, '
                                          '"pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}')
    save_file(timm.create_model("resnet18", num_classes=7).state_dict(), str(snapshot / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    model = create_model("hf-hub:acme/tiny-resnet", None)
    assert type(model).__name__ == "ResNet" and model.fc.out_features == 7


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def assert_same_architecture(ours: nn.Module, theirs: nn.Module) -> None:
    assert type(ours) is type(theirs)
    assert shapes(ours) == shapes(theirs)


@pytest.mark.parametrize(("name", "num_classes", "kwargs"), [("resnet18", 7, {}), ("resnet18", None, {"in_chans": 1}),
                                                             ("gapnet_resnet18", 4, {})])
def test_timm_names_build_what_timm_builds(name, num_classes, kwargs):
    theirs = timm.create_model(name, **kwargs, **({} if num_classes is None else {"num_classes": num_classes}))
    assert_same_architecture(create_model(name, num_classes, **kwargs), theirs)


def test_torchvision_names_build_what_torchvision_builds():
    assert_same_architecture(create_model("torchvision/resnet18", 7), torchvision.models.get_model("resnet18",
                                                                                                   num_classes=7))
    assert_same_architecture(create_model("torchvision/resnet18"), torchvision.models.get_model("resnet18"))
    for name in ("lraspp_mobilenet_v3_large", "torchvision/deeplabv3_mobilenet_v3_large"):
        options = {"aux_loss": True} if "deeplab" in name else {}
        theirs = torchvision.models.get_model(name.removeprefix("torchvision/"), weights=None, weights_backbone=None,
                                              num_classes=3, **options)
        assert_same_architecture(create_model(name, 3, task="segmentation", **options), theirs)


@pytest.fixture
def hf():
    return pytest.importorskip("transformers", reason="the transformers extra is not installed")


def tiny_resnet_config(hf) -> Any:
    return hf.ResNetConfig(hidden_sizes=[8, 16], depths=[1, 1], embedding_size=8, num_labels=4)


def tiny_segformer_config(hf) -> Any:
    return hf.SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                              patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2],
                              decoder_hidden_size=16, num_labels=3)


def test_hf_names_build_what_transformers_builds(hf, tmp_path):
    tiny_resnet_config(hf).save_pretrained(tmp_path / "resnet")
    tiny_segformer_config(hf).save_pretrained(tmp_path / "segformer")
    theirs = hf.AutoModelForImageClassification.from_config(hf.AutoConfig.from_pretrained(tmp_path / "resnet",
                                                                                          num_labels=5))
    assert_same_architecture(create_model(f"hf:{tmp_path / 'resnet'}", 5), theirs)
    theirs = hf.AutoModelForSemanticSegmentation.from_config(hf.AutoConfig.from_pretrained(tmp_path / "segformer"))
    assert_same_architecture(create_model(f"hf:{tmp_path / 'segformer'}", task="segmentation"), theirs)
    with pytest.raises(TypeError, match="options drop_rate are for timm and torchvision models"):
        create_model(f"hf:{tmp_path / 'resnet'}", drop_rate=0.1)


def test_a_save_pretrained_folder_is_read_and_loaded_by_its_zoo(hf, tmp_path):
    torch.manual_seed(0)
    saved = hf.ResNetForImageClassification(tiny_resnet_config(hf))
    saved.save_pretrained(tmp_path / "resnet")
    checkpoint = read_checkpoint(str(tmp_path / "resnet"))
    assert (checkpoint.state_dict, checkpoint.name, checkpoint.num_classes) == (None, f"hf:{tmp_path / 'resnet'}", 4)
    loaded = create_model(checkpoint.name, pretrained=True)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in saved.state_dict().items())
    with pytest.raises(UsageError, match="is a transformers save_pretrained folder of its own architecture: leave out "
                                         "--model resnet18"):
        load_model(str(tmp_path / "resnet"), model="resnet18")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError) as refused:
        read_checkpoint(str(tmp_path / "empty"))
    assert str(refused.value) == (
        f"{tmp_path / 'empty'} is a folder without model_best.pth.tar, last.pth.tar (timm train.py output), "
        "model.safetensors (the Accelerate example's output) or config.json (a transformers save_pretrained folder): "
        "pass the checkpoint file itself")


def test_each_zoo_names_the_normalisation_of_its_pretrained_weights(hf, tmp_path):
    data = timm.data.resolve_data_config({}, model=timm.create_model("resnet18"))
    timm_stats = pretrained_normalization("resnet18", timm.create_model("resnet18"))
    assert (timm_stats.mean, timm_stats.source) == (tuple(data["mean"]), "timm's pretrained_cfg of resnet18")
    for name in ("fcn_resnet50", "torchvision/resnet18"):
        weights = torchvision.models.get_model_weights(name.removeprefix("torchvision/")).DEFAULT
        stats = pretrained_normalization(name, None)
        assert (stats.std, stats.source) == (tuple(weights.transforms().std), f"the transforms of torchvision's {weights}")
    hf.ResNetForImageClassification(tiny_resnet_config(hf)).save_pretrained(tmp_path / "resnet")
    hf.ConvNextImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.3, 0.3, 0.3]).save_pretrained(tmp_path / "resnet")
    stats = pretrained_normalization(f"hf:{tmp_path / 'resnet'}", None)
    assert (stats.mean, stats.source) == ((0.1, 0.2, 0.3), f"the image processor of hf:{tmp_path / 'resnet'}")


def test_the_logits_are_found_where_each_zoo_puts_them(hf):
    assert LOGITS_KEYS == ("logits", "out")  # a ModelOutput's, torchvision segmenters'
    with pytest.raises(UsageError, match=re.escape(f"no logits tensor; supported: {MODEL_CONTRACT}")):
        logits_of("a string")
    x = torch.zeros(1, 3, 32, 32)
    segmenter = create_model("lraspp_mobilenet_v3_large", 3, task="segmentation").eval()
    assert logits_of(segmenter(x)).shape == (1, 3, 32, 32)
    output = hf.ResNetForImageClassification(tiny_resnet_config(hf)).eval()(x)
    assert logits_of(output) is output.logits
    assert logits_of({"aux": torch.zeros(1), "out": torch.ones(2)}).tolist() == [1.0, 1.0]
    assert logits_of(create_model("resnet18", 3).eval()(x)).shape == (1, 3)


def test_each_zoo_names_the_stages_of_its_own_models_only(hf):
    segmenter = create_model("lraspp_mobilenet_v3_large", 3, task="segmentation")
    resnet = timm.create_model("resnet18")
    tv_resnet = torchvision.models.resnet18()
    hf_resnet = hf.ResNetForImageClassification(tiny_resnet_config(hf))
    assert [TORCHVISION.stages(m) for m in (segmenter, resnet, tv_resnet, hf_resnet)] == [["backbone"], None, None, None]
    assert TIMM.stages(resnet)[-1] == "layer4" and TIMM.stages(tv_resnet) is None and TIMM.stages(segmenter) is None
    assert [TRANSFORMERS.body(m) for m in (hf_resnet, resnet, tv_resnet, segmenter)] == ["resnet", None, None, None]
    assert TORCHVISION.checkpoint_options({"aux_classifier.0.weight": torch.zeros(1)}) == {"aux_loss": True}
    assert TIMM.checkpoint_options({"aux_classifier.0.weight": torch.zeros(1)}) == {}


class ToyZoo(Zoo):
    """A zoo of ``toy:`` names: what adding a zoo takes."""

    supported = "toy models (toy:<width>)"

    def claims(self, name: str, *, task: Optional[str] = None) -> bool:
        return name.startswith("toy:")

    def create(self, name: str, num_classes: Optional[int], *, pretrained: bool, task: str, **kwargs: Any) -> nn.Module:
        return nn.Linear(int(name.removeprefix("toy:")), num_classes or 2)

    def normalization(self, name: str, model: Optional[nn.Module]) -> Optional[Normalization]:
        return Normalization((0.5,), (0.5,), f"the toy statistics of {name}")


@pytest.fixture
def toy_zoo():
    zoo = register_zoo(ToyZoo())
    yield zoo
    ZOOS.remove(zoo)


def test_a_zoo_added_to_the_registry_is_dispatched_to(toy_zoo):
    assert ZOOS[0] is toy_zoo
    assert create_model("toy:4", 3).weight.shape == (3, 4)
    loaded = load_model(model="toy:5", pretrained=True)
    assert loaded.model.out_features == 2 and loaded.normalization.source == "the toy statistics of toy:5"
    assert type(create_model("resnet18", 3)).__name__ == "ResNet"  # the other names as before
    with pytest.raises(UsageError, match=r"supported: timm models .*, toy models \(toy:<width>\)$"):
        create_model("no_such_net", 3)  # the messages name the zoo registered at run time


def test_a_zoo_is_checked_when_registered(toy_zoo):
    with pytest.raises(UsageError, match="is registered already; registered: timm models"):
        register_zoo(toy_zoo)
    with pytest.raises(UsageError, match=r"ToyZoo is a class: register an instance, register_zoo\(ToyZoo\(\)\)"):
        register_zoo(ToyZoo)
    with pytest.raises(UsageError, match="an instance of a Zoo subclass .* not str"):
        register_zoo("toy")
    nameless = type("Nameless", (ToyZoo,), {"supported": ""})()
    with pytest.raises(UsageError, match="Nameless has no 'supported' text"):
        register_zoo(nameless)
    assert ZOOS.count(toy_zoo) == 1 and nameless not in ZOOS


@pytest.mark.parametrize("module", ["augshift.models.zoos.registry", "augshift.models.zoos.base", "augshift.models.zoos.timm",
                                    "augshift.models.zoos.torchvision", "augshift.models.zoos.transformers"])
def test_the_zoos_examples_run(module, hf):
    results = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert results.failed == 0 and results.attempted > 0


class HoldsModel(nn.Module):
    """A model whose top-level submodule is called ``model`` (its keys start with ``model.`` as a wrapper's do)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Linear(4, 3)


@pytest.mark.parametrize("saved_as", ["as is", "under DDP (module.)"])
def test_a_submodule_called_model_loads_as_saved_and_wrapper_prefixes_are_dropped(tmp_path, saved_as):
    from augshift.models.checkpoints import load_state

    torch.manual_seed(0)
    trained = HoldsModel()
    prefix = "module." if saved_as.startswith("under") else ""
    torch.save({f"{prefix}{key}": value for key, value in trained.state_dict().items()}, tmp_path / "w.pt")
    loaded = load_state(HoldsModel(), read_checkpoint(str(tmp_path / "w.pt")), "HoldsModel")
    assert loaded.state_dict().keys() == trained.state_dict().keys()
    torch.testing.assert_close(loaded.model.weight, trained.model.weight, rtol=0, atol=0)
    resnet = timm.create_model("resnet18", num_classes=3)  # a wrapper's .model prefix on a plain timm model: dropped
    torch.save({f"model.{key}": value for key, value in resnet.state_dict().items()}, tmp_path / "r.pt")
    again = load_model(str(tmp_path / "r.pt"), model="resnet18").model
    torch.testing.assert_close(again.fc.weight, resnet.fc.weight, rtol=0, atol=0)
