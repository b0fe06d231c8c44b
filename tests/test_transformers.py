"""Hugging Face transformers image models everywhere a model is taken (random-init configs and save_pretrained folders,
offline), AugShiftTrainer against AugShift, and the Trainer example on one and two CPU processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import free_port

transformers = pytest.importorskip("transformers", reason="the transformers extra is not installed")

from augshift import AugShift, ShiftConsistency, loss_parts  # noqa: E402
from augshift.cli import main  # noqa: E402
from augshift.data import Normalization, load_split_dataset  # noqa: E402
from augshift.seeding import stream_seed  # noqa: E402
from augshift.errors import UsageError  # noqa: E402
from augshift.models import create_model, default_layer, load_model, pretrained_normalization  # noqa: E402
from augshift import logits_of
from augshift.position import rank_position_channels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "integrations" / "transformers" / "run_image_classification.py"
FAMILIES = {
    "resnet": lambda: transformers.ResNetForImageClassification(transformers.ResNetConfig(
        hidden_sizes=[8, 16, 24, 32], embedding_size=8, depths=[1, 1, 1, 1], num_labels=10)),
    "convnext": lambda: transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_labels=10)),
    "vit": lambda: transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=4,
        num_labels=10)),
    "swin": lambda: transformers.SwinForImageClassification(transformers.SwinConfig(
        embed_dim=16, depths=[1, 1], num_heads=[1, 2], image_size=32, patch_size=4, window_size=4, num_labels=10)),
}


def tiny(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return FAMILIES[family]()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_augshift_metric_and_channel_ranking_on_transformers_models(family):
    model = tiny(family)
    images, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    result = AugShift(model, generator=torch.Generator().manual_seed(0))(images, labels)
    result["loss"].backward()
    parts = loss_parts(result)
    assert parts["consistency"] > 0 and result["logits"].shape == (8, 10)  # both views in one forward
    assert all(p.grad is not None for p in model.classifier.parameters())
    metric = ShiftConsistency(protocols=("random", "circular", "fractional"))
    metric.update(model.eval(), images, labels, torch.arange(4))
    report = metric.compute()
    assert report.samples == 4 and set(report.agree) == {"random", "circular", "fractional"}
    layer = default_layer(model, images)
    assert layer.has_extent
    ranking = rank_position_channels(model, layer.name, images)
    assert len(ranking.channels) == len(set(ranking.channels.tolist())) > 1


def test_a_save_pretrained_folder_loads_by_name_and_as_a_checkpoint(tmp_path):
    model = tiny("vit")
    model.save_pretrained(tmp_path / "vit")
    transformers.ViTImageProcessor(image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3]).save_pretrained(tmp_path / "vit")
    for loaded in (load_model(model=f"hf:{tmp_path / 'vit'}", pretrained=True), load_model(str(tmp_path / "vit"))):
        assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in model.state_dict().items())
        assert loaded.normalization.mean == (0.4, 0.5, 0.6)  # the folder's image processor
    fresh = create_model(f"hf:{tmp_path / 'vit'}", 3)  # the config's architecture, random init, a new head
    assert fresh.classifier.out_features == 3
    assert not torch.equal(fresh.vit.embeddings.patch_embeddings.projection.weight,
                           model.vit.embeddings.patch_embeddings.projection.weight)
    x = torch.randn(2, 3, 32, 32)
    assert logits_of(model.eval()(x)).shape == (2, 10)


def test_pretrained_weights_bring_their_own_normalisation(tmp_path, monkeypatch):
    """timm's pretrained_cfg, torchvision's weights transforms, a transformers image processor: each model gets its
    own statistics, never another dataset's."""
    import timm
    import torchvision

    assert pretrained_normalization("resnet18", timm.create_model("resnet18")).mean == timm.data.IMAGENET_DEFAULT_MEAN
    vit = timm.create_model("vit_tiny_patch16_224")  # timm ViTs were trained with 0.5 / 0.5
    assert pretrained_normalization("vit_tiny_patch16_224", vit).mean == (0.5, 0.5, 0.5)
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    assert pretrained_normalization("torchvision/resnet18", None).mean == tuple(weights.transforms().mean)
    folder = tmp_path / "convnext"
    tiny("convnext").save_pretrained(folder)
    assert pretrained_normalization(f"hf:{folder}", None) is None  # no image processor: the data's own, by the caller
    transformers.ConvNextImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.3, 0.3, 0.3]).save_pretrained(folder)
    assert pretrained_normalization(f"hf:{folder}", None).std == (0.3, 0.3, 0.3)


def test_hf_names_without_transformers_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(UsageError, match=r'pip install "augshift\[transformers\]"'):
        create_model("hf:microsoft/resnet-18")


def test_consistency_and_channels_commands_take_hf_models(cifar10_dir, tmp_path):
    folder = tmp_path / "vit"
    tiny("vit").save_pretrained(folder)
    assert main(["consistency", "--model", f"hf:{folder}", "--pretrained", "--data", str(cifar10_dir), "--eval-limit", "6",
                 "--protocols", "random,circular_worst", "--max-shift", "2", "--out", str(tmp_path / "c")]) == 0
    result = json.loads((tmp_path / "c" / "consistency.json").read_text())
    assert result["model"] == f"hf:{folder}" and result["results"]["samples"] == 6
    assert "own statistics" in result["normalization"]["source"]  # the folder has no image processor
    assert main(["channels", "--checkpoint", str(folder), "--data", str(cifar10_dir), "--eval-limit", "4", "--top", "3",
                 "--out", str(tmp_path / "r")]) == 0
    ranking = json.loads(next((tmp_path / "r").glob("channels-*.json")).read_text())
    assert ranking["layer"] == "vit.layernorm" and ranking["layer_size"] == [8, 8]


def trainer_for(model, tmp_path, eval_dataset=None):
    from augshift.integrations.transformers import AugShiftTrainer

    args = transformers.TrainingArguments(output_dir=str(tmp_path / "t"), report_to=[], use_cpu=True, seed=4,
                                          remove_unused_columns=False, per_device_eval_batch_size=4)
    return AugShiftTrainer(model=model, args=args, eval_dataset=eval_dataset,
                           protocols=("random", "circular", "random_worst"), max_shift=2)


def test_trainer_loss_equals_augshift_on_the_same_batch_and_shifts(tmp_path):
    from augshift.seeding import Stream

    model = tiny("resnet")
    trainer = trainer_for(model, tmp_path)
    images, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    model.train()
    loss = trainer.compute_loss(model, {"pixel_values": images, "labels": labels})
    # the trainer draws step 0's shifts from its stream; AugShift with a generator at the same state
    generator = torch.Generator().manual_seed(stream_seed(4, Stream.SHIFT, 0, 0))
    reference = AugShift(model, generator=generator)(images, labels)["loss"]
    torch.testing.assert_close(loss, reference, rtol=0, atol=0)
    model.eval()  # evaluation: the plain cross-entropy of the unshifted images, and their logits
    eval_loss, outputs = trainer.compute_loss(model, {"pixel_values": images, "labels": labels}, return_outputs=True)
    torch.testing.assert_close(outputs["logits"], model(images).logits)
    torch.testing.assert_close(eval_loss, torch.nn.functional.cross_entropy(model(images).logits, labels))


def test_trainer_evaluate_adds_the_metric_of_the_core(cifar10_dir, tmp_path):
    model = tiny("vit")
    normalization = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "test")
    data = load_split_dataset(str(cifar10_dir), "test", normalization=normalization, limit=10)
    metrics = trainer_for(model, tmp_path, data).evaluate()
    metric = ShiftConsistency(max_shift=2, seed=4, protocols=("random", "circular", "random_worst"))
    model.eval()
    for start in range(0, 10, 4):
        rows = data[start:start + 4]
        metric.update(model, rows["pixel_values"], rows["labels"], rows["index"])
    reference = metric.compute()
    # rates in [0, 1], as Trainer's eval_accuracy: the core's counts over the samples
    assert metrics["eval_shift_consistency"] == reference.agree["random"] / 10 == reference.consistency("random") / 100
    assert metrics["eval_shift_consistency_circular"] == reference.agree["circular"] / 10
    assert metrics["eval_shift_consistency_random_worst"] == reference.agree["random_worst"] / 10
    assert "eval_loss" in metrics


def run_example(args: list[str], *, processes: int = 1) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
                str(free_port())] if processes > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, str(EXAMPLE), *args], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


@pytest.mark.slow
def test_example_trains_saves_a_plain_model_and_two_processes_report_one_process_numbers(cifar10_dir, tmp_path):
    folder = tmp_path / "vit"
    tiny("vit").save_pretrained(folder)
    common = ["--dataset_name", str(cifar10_dir), "--use_cpu", "--report_to", "none", "--seed", "1",
              "--max_eval_samples", "50", "--per_device_eval_batch_size", "8", "--augshift-protocols",
              "random,circular,fractional"]
    run_example([*common, "--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "trained"), "--do_train",
                 "--max_train_samples", "32", "--per_device_train_batch_size", "8", "--num_train_epochs", "1"])
    trained = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "trained")  # the plain model
    assert not torch.equal(trained.classifier.weight, tiny("vit").classifier.weight)  # it trained
    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path / "trained")
    assert processor.image_mean != [0.5, 0.5, 0.5]  # the training images' statistics, recorded with the model
    results = {}
    for processes in (1, 2):
        out = tmp_path / f"eval{processes}"
        run_example([*common, "--model_name_or_path", str(tmp_path / "trained"), "--output_dir", str(out), "--do_eval"],
                    processes=processes)
        results[processes] = json.loads((out / "eval_results.json").read_text())
    keys = [k for k in results[1] if k.startswith("eval_shift_consistency")]
    assert sorted(keys) == ["eval_shift_consistency", "eval_shift_consistency_circular",
                            "eval_shift_consistency_fractional"]
    assert {k: results[2][k] for k in keys} == {k: results[1][k] for k in keys}
    assert results[1]["normalization_source"] == f"the image processor of hf:{tmp_path / 'trained'}"
    assert 0 < results[1]["eval_shift_consistency_fractional"] < 1 or 0 < results[1]["eval_shift_consistency"] < 1


@pytest.mark.slow
def test_accelerate_example_trains_a_transformers_model_and_saves_it_loadable(cifar10_dir, tmp_path):
    folder = tmp_path / "resnet"
    tiny("resnet").save_pretrained(folder)
    script = ROOT / "integrations" / "accelerate" / "train.py"
    done = subprocess.run([sys.executable, str(script), "--cpu", "--data", str(cifar10_dir), "--model", f"hf:{folder}",
                           "--train-limit", "32", "--eval-limit", "16", "--batch-size", "8", "--epochs", "1",
                           "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["eval_split"] == "test" and "training images" in metrics["normalization"]["source"]
    model = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "out")
    loaded = load_model(str(tmp_path / "out"))
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in model.state_dict().items())
    assert loaded.normalization.to_dict() == metrics["normalization"]


def test_attack_on_a_transformers_segmenter_ranks_its_encoder_not_its_head(tmp_path):
    """A save_pretrained SegFormer: the attack ranks and ablates the last encoder stage (inside the base model), and
    scores the logits of its SemanticSegmenterOutput."""
    from helpers import mask_folder

    torch.manual_seed(0)
    segformer = transformers.SegformerForSemanticSegmentation(transformers.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
        strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=3))
    segformer.save_pretrained(tmp_path / "segformer")
    assert default_layer(segformer, torch.zeros(1, 3, 32, 32)).name == "segformer.stages.1"
    mask_folder(tmp_path / "data", size=32)
    assert main(["attack", "--checkpoint", str(tmp_path / "segformer"), "--data", str(tmp_path / "data"),
                 "--eval-split", "val", "--counts", "4,16", "--draws", "2", "--out", str(tmp_path / "out")]) == 0
    result = json.loads(next((tmp_path / "out").glob("attack-*.json")).read_text())
    curve = result["curve"]
    assert curve["layer"] == "segformer.stages.1" and result["test_images"] == 4 and curve["counts"] == [4, 16]
    assert curve["top"]["miou"][-1] != curve["baseline"]["miou"]  # ablating 16 of its 16 channels changes the masks


def test_a_save_pretrained_folder_keeps_its_own_architecture(tmp_path):
    tiny("vit").save_pretrained(tmp_path / "vit")
    tiny("resnet").save_pretrained(tmp_path / "resnet")
    with pytest.raises(UsageError, match="leave out --model"):
        load_model(str(tmp_path / "vit"), model=f"hf:{tmp_path / 'resnet'}")


def tiny_segformer() -> torch.nn.Module:
    torch.manual_seed(0)
    return transformers.SegformerForSemanticSegmentation(transformers.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
        strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=3))


def test_a_folder_is_evaluated_as_trained_or_refused(tmp_path, capsys):
    """A head the loader would initialise at random (another class count, another task's head, weights the folder
    lacks) is refused; the folder as saved loads with every weight it holds."""
    tiny("vit").save_pretrained(tmp_path / "vit")
    tiny_segformer().save_pretrained(tmp_path / "segformer")
    with pytest.raises(UsageError, match="has 10 classes, not --num-classes 12"):
        load_model(str(tmp_path / "vit"), num_classes=12)
    for source in (str(tmp_path / "segformer"), None):
        with pytest.raises(UsageError, match="holds a segmentation model .* give it to augshift channels"):
            if source is None:
                create_model(f"hf:{tmp_path / 'segformer'}", pretrained=True)
            else:
                load_model(source)
    headless = tiny("vit")
    headless.save_pretrained(tmp_path / "headless", state_dict={k: v for k, v in headless.state_dict().items()
                                                                if not k.startswith("classifier.")})
    with pytest.raises(UsageError, match="lacks weights the model needs .*classifier"):
        load_model(str(tmp_path / "headless"))
    assert load_model(str(tmp_path / "vit"), num_classes=10).model.config.num_labels == 10
    code = main(["consistency", "--checkpoint", str(tmp_path / "segformer"), "--data", "unused", "--out",
                 str(tmp_path / "out")])
    assert code == 2 and "augshift channels / augshift attack" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def first_update(tmp_path, *, batch_size: int, accumulation: int) -> dict[str, torch.Tensor]:
    """The weights of a tiny ViT after one optimizer step of AugShiftTrainer over 8 images, ``batch_size`` per forward
    and ``accumulation`` forwards per step. The images are constant, so their circular shifts leave them unchanged and
    the step does not depend on which shifts were drawn; ViT has no batch statistics, so the mean loss over 8 images
    equals the mean of two means over 4."""
    from augshift import AugShiftConfig
    from augshift.integrations.transformers import AugShiftTrainer

    torch.manual_seed(0)
    model = FAMILIES["vit"]()
    colours = torch.linspace(-1, 1, 8)
    train = [{"pixel_values": colours[i].expand(3, 32, 32).clone(), "labels": torch.tensor(i % 10)} for i in range(8)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / f"ga{accumulation}"), report_to=[], use_cpu=True, seed=4, remove_unused_columns=False,
        per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation, max_steps=1, optim="sgd",
        learning_rate=0.5, lr_scheduler_type="constant", max_grad_norm=0.0, save_strategy="no", logging_strategy="no")
    AugShiftTrainer(model=model, args=args, train_dataset=train,
                    augshift=AugShiftConfig(max_shift=2, mode="circular")).train()
    return {name: value.detach().clone() for name, value in model.named_parameters()}


def test_gradient_accumulation_makes_the_update_of_the_whole_batch(tmp_path):
    """Two forwards of 4 images accumulated make the same first update as one forward of 8: the trainer's mean loss
    is divided over the accumulation steps by every transformers release the package allows."""
    torch.manual_seed(0)
    start = {name: value.detach().clone() for name, value in FAMILIES["vit"]().named_parameters()}
    whole = first_update(tmp_path, batch_size=8, accumulation=1)
    accumulated = first_update(tmp_path, batch_size=4, accumulation=2)
    moved = max((whole[name] - start[name]).abs().max().item() for name in start)
    assert moved > 1e-3  # the step moved the weights
    for name in whole:
        torch.testing.assert_close(accumulated[name], whole[name], rtol=1e-5, atol=1e-6)
