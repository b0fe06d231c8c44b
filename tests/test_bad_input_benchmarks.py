"""Benchmarks that report only what ran: the bad-input matrix of the benchmark scripts, the metric API, run-time
registration and the Trainer. Every case is a one-line refusal (exit code 2 for a script, a named exception for
the Python API) before any training or evaluation, or a correct result; each names the message fragment the user
reads. A work folder made by one command cannot be reported by another: each field of a run's identity is changed
once and refused."""
from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import finetune
import invariance
import pytest
import sweep.runs
import time_budget
import torch
from helpers import registered
from torch import nn

from augshift import ShiftConsistency, register_protocol
from augshift.cli import main as augshift_main
from augshift.errors import UsageError, run_command
from augshift.protocols import PROTOCOLS
from augshift.views import ShiftProtocol

TINY = ["--preset", "quick", "--data", "cifar10=shapes", "--train-limit", "32", "--eval-limit", "16", "--epochs", "1",
        "--seeds", "0", "--models", "test_resnet", "--protocols", "random", "--curve-size", "0", "--batch-size", "16"]


def run_script(script, argv: list[str], capsys) -> tuple[int, list[str]]:
    """A benchmark script's ``main`` behind its error boundary, as ``python benchmarks/<script>.py argv`` runs it:
    ``(exit code, stderr lines)``."""
    try:
        code = run_command(f"{script.__name__}.py", lambda: script.main(argv), argv)
    except SystemExit as exit:  # the parser's own one-line error
        code = exit.code
    return code, capsys.readouterr().err.strip().splitlines()


def refused(code: int, err: list[str], fragment: str) -> None:
    assert code == 2 and len(err) == 1 and "error:" in err[0], err
    assert fragment in err[0], err[0]


@pytest.fixture
def no_training(monkeypatch):
    """Any training step or evaluation fails the test: a refusal must come first."""
    from augshift.engine.trainer import Trainer

    monkeypatch.setattr(Trainer, "step", lambda *a, **k: pytest.fail("a training step ran before the refusal"))
    monkeypatch.setattr(sweep.runs, "evaluate_model", lambda *a, **k: pytest.fail("an evaluation ran first"))


# ---------------------------------------------------------------------------------------------- scripts: parsing

@pytest.mark.parametrize("change, fragment", [
    (["--models", "resnet18,resnet18"], "--models names resnet18 twice"),
    (["--models", ""], "expected comma-separated rows"),
    (["--models", "resnet18,,resnet18blur"], "expected comma-separated rows"),
    (["--models", "resnet18[epochs=2,epochs=3]"], "gives epochs twice"),
    (["--models", "resnet18[epochs=x]"], "expected MODEL[KEY=N,...]"),
    (["--models", "no_such_net"], "timm has no model 'no_such_net'"),
    (["--seeds", "0,0"], "seed 0 is given twice"),
    (["--seeds", "0,a"], "expected comma-separated whole numbers"),
    (["--epochs", "0"], "must be >= 1"),
    (["--lr", "nan"], "must be a finite number > 0"),
    (["--time-budget", "0"], "must be a finite number > 0"),
    (["--time-budget", "-1"], "must be a finite number > 0"),
    (["--time-budget", "nan"], "must be a finite number > 0"),
    (["--shard", "0/2", "--collect"], "not allowed with argument"),
    (["--data", "cifar10"], "expected DATASET=SOURCE"),
    (["--trace-protocols", "random_worst"], "the per-epoch trace takes pair protocols only"),
    (["--protocols", "random_worst"], "has no pair protocol for the tables"),
    (["--protocols", "random,crop"], "crop evaluate(s) crops of test images larger than the model's input"),
    (["--trace-protocols", "crop"], "crop evaluate(s) crops of test images larger than the model's input"),
])
def test_a_bad_benchmark_option_is_one_line_before_any_work(change, fragment, tmp_path, capsys, no_training):
    argv = [*TINY, *change, "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    refused(*run_script(invariance, argv, capsys), fragment)
    assert not (tmp_path / "out").exists()


def test_a_training_set_smaller_than_the_batch_is_said(tmp_path, capsys):
    argv = [*TINY, "--batch-size", "64", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    assert invariance.main(argv) == 0
    assert ("note: the training set has 32 images, fewer than the global batch of 64: every epoch is one step of 32 "
            "images") in capsys.readouterr().err


def test_an_output_path_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, no_training):
    (tmp_path / "out").write_text("a file")
    refused(*run_script(invariance, [*TINY, "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "out")], capsys),
            "not a folder")


def test_collect_on_a_half_finished_folder_names_the_missing_runs(tmp_path, capsys, no_training):
    argv = [*TINY, "--seeds", "0,1", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--collect"]
    refused(*run_script(invariance, argv, capsys), "2 run(s) have no result.json")


# ---------------------------------------------------------------------------------------------- work folders

@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A work folder holding one finished tiny run (and the tables it made)."""
    root = tmp_path_factory.mktemp("finished")
    assert invariance.main([*TINY, "--workdir", str(root / "work"), "--out", str(root / "out")]) == 0
    return root


@pytest.mark.parametrize("change, differs", [
    (["--train-limit", "24"], "inputs.train_size: 24 asked, 32 stored"),
    (["--eval-limit", "8"], "inputs.test_size: 8 asked, 16 stored"),
    (["--data", "cifar10=shapes_again"], "inputs.source: shapes_again asked, shapes stored"),
    (["--protocols", "random,circular"], "inputs.protocols: ['random', 'circular'] asked, ['random'] stored"),
    (["--trace-protocols", "circular"], "inputs.trace_protocols: ['circular'] asked, [] stored"),
    (["--curve-size", "4"], "inputs.curve_size: 4 asked, 0 stored"),
    (["--lr", "0.2"], "config.lr: 0.2 asked, 0.1 stored"),
    (["--batch-size", "8"], "config.batch_size: 8 asked, 16 stored"),
    (["--stem", "cifar"], "stem: cifar asked, standard stored"),
])
def test_a_work_folder_of_other_options_is_refused_naming_what_differs(finished, change, differs, tmp_path,
                                                                        capsys, no_training):
    argv = [*TINY, *change, "--workdir", str(finished / "work"), "--out", str(tmp_path / "out"), "--collect"]
    code, err = run_script(invariance, argv, capsys)
    refused(code, err, differs)
    assert "pass another --workdir" in err[0] and not (tmp_path / "out").exists()


def test_the_tables_print_what_the_runs_had(finished):
    markdown = (finished / "out" / "results.md").read_text()
    result = json.loads((finished / "out" / "results.json").read_text())["datasets"]["cifar10"]["runs"][0]
    assert result["inputs"]["train_size"] == 32 and result["inputs"]["test_size"] == 16
    assert "32 train / 16 test images" in markdown
    assert "Recipe (of the runs): 1 epochs" in markdown and "global batch 16" in markdown and "Seeds [0]" in markdown


def test_an_interrupted_run_of_other_options_is_refused_not_resumed(tmp_path, capsys, monkeypatch):
    import augshift.engine.trainer as trainer

    def interrupt():  # Ctrl-C once the first epoch's checkpoint is written
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "barrier", interrupt)
    work = tmp_path / "w"
    argv = [*TINY, "--epochs", "2", "--workdir", str(work), "--out", str(tmp_path / "o")]
    code, err = run_script(invariance, argv, capsys)
    assert code == 130 and err[-1] == "invariance.py: interrupted; files already written are whole"
    assert not any("Traceback" in line for line in err)  # the progress bar above it, and one line
    assert (work / "cifar10" / "test_resnet_seed0" / "checkpoint.pt").is_file()
    code, err = run_script(invariance, [*argv, "--train-limit", "24"], capsys)
    refused(code, err, "checkpoint.pt holds run test_resnet_seed0 made with other options (inputs.train_size: 24")


def test_a_time_budget_plan_is_reused_only_for_the_same_budget_and_recipe(tmp_path, monkeypatch, capsys):
    measured = {"step_seconds": {"test_resnet@16": 0.1}, "trace_seconds_per_image": {"test_resnet": 0.0},
                "evaluation_seconds_per_image": {"test_resnet": 0.0}}
    plans = []
    monkeypatch.setattr(time_budget, "measure_preset", lambda *a, **k: plans.append(1) or measured)
    common = [*TINY, "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--time-budget", "1"]
    assert invariance.main([*common, "--epochs", "3"]) == 0
    assert json.loads((tmp_path / "o" / "results.json").read_text())["datasets"]["cifar10"]["time_budget"]["epochs"] == 3
    capsys.readouterr()
    # another cap: planned again (1 epoch, not "3 of at most 1"), then the 3-epoch runs in the folder are refused
    code, err = run_script(invariance, [*common, "--epochs", "1"], capsys)
    assert len(plans) == 2
    refused(code, err, "made with other options (config.epochs: 1 asked, 3 stored)")
    code, err = run_script(invariance, [*common, "--epochs", "2", "--collect"], capsys)
    refused(code, err, "holds no plan for these options and --time-budget 1 (it holds one for preset.epochs: 2 asked, "
                       "1 stored")


def test_a_budget_that_fits_no_epoch_says_what_one_needs(tmp_path, monkeypatch, capsys, no_training):
    measured = {"step_seconds": {"test_resnet@16": 60.0}, "trace_seconds_per_image": {"test_resnet": 0.0},
                "evaluation_seconds_per_image": {"test_resnet": 0.0}}
    monkeypatch.setattr(time_budget, "measure_preset", lambda *a, **k: measured)
    argv = [*TINY, "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--time-budget", "0.5"]
    refused(*run_script(invariance, argv, capsys), "the time budget fits no epoch: one epoch of the preset needs about 2")


# ---------------------------------------------------------------------------------------------- fine-tuning

def save_checkpoint(path: Path, seed: int) -> Path:
    from augshift.models import create_model

    torch.manual_seed(seed)
    torch.save({"state_dict": create_model("test_resnet", 10).state_dict()}, path)  # the shapes' 10 classes
    return path


def test_finetuning_a_new_checkpoint_in_an_old_folder_is_refused(tmp_path, capsys):
    common = ["--preset", "quick", "--data", "shapes", "--train-limit", "32", "--eval-limit", "16", "--epochs", "1",
              "--seeds", "0", "--protocols", "random", "--curve-size", "0", "--batch-size", "16", "--model",
              "test_resnet", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    first = save_checkpoint(tmp_path / "first.pt", 0)
    assert finetune.main([*common, "--checkpoint", str(first)]) == 0
    capsys.readouterr()
    save_checkpoint(first, 1)  # another model at the same path
    refused(*run_script(finetune, [*common, "--checkpoint", str(first)], capsys), "start.json holds run start made "
            "with other options (init_digest:")


def test_finetuning_a_checkpoint_of_other_classes_is_refused_without_advising_num_classes(tmp_path, capsys,
                                                                                          no_training):
    from augshift.models import create_model

    torch.save({"state_dict": create_model("test_resnet", 7).state_dict()}, tmp_path / "seven.pt")
    argv = ["--checkpoint", str(tmp_path / "seven.pt"), "--model", "test_resnet", "--data", "shapes", "--train-limit",
            "32", "--eval-limit", "16", "--epochs", "1", "--seeds", "0", "--protocols", "random",
            "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    code, err = run_script(finetune, argv, capsys)
    refused(code, err, "has 7 classes and shapes has")
    assert "--num-classes" not in err[0]


# ---------------------------------------------------------------------------------------------- the metric API

def tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 16, 16, generator=generator), torch.arange(n) % 3, torch.arange(n)


def test_a_model_in_train_mode_is_scored_as_in_eval_mode_and_keeps_its_mode_and_statistics():
    model = tiny_classifier()
    images, labels, indices = batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = ShiftConsistency(protocols=("random", "circular_worst"))
    trained.update(model, images, labels, indices)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm's statistics too
    evaluated = ShiftConsistency(protocols=("random", "circular_worst"))
    model.eval()
    evaluated.update(model, images, labels, indices)
    assert trained.compute().to_dict() == evaluated.compute().to_dict()


@pytest.mark.parametrize("other", [dict(max_shift=3), dict(mode="circular"), dict(seed=1), dict(curve_max_shift=1),
                                   dict(protocols=("random",))])
def test_a_merge_of_metrics_made_otherwise_is_refused(other):
    model = tiny_classifier().eval()
    images, labels, indices = batch()
    alike = dict(protocols=("random", "circular"))
    flags = ShiftConsistency(**{**alike, **other}).flags(model, images, labels, indices)
    metric = ShiftConsistency(**alike)
    with pytest.raises(UsageError, match="made with other settings than this one's"):
        metric.add(flags)
    metric.add(ShiftConsistency(**alike).flags(model, images, labels, indices))  # made alike: merged
    assert metric.compute().samples == len(images)


@pytest.mark.parametrize("options, error, fragment", [
    (dict(chunk_size=0), UsageError, "chunk_size (images per forward) must be >= 1"),
    (dict(chunk_size=2.5), TypeError, "chunk_size must be an int"),
    (dict(seed=1.5), TypeError, "seed must be an int"),
    (dict(seed=True), TypeError, "seed must be an int"),
    (dict(max_shift=2.0), TypeError, "max_shift must be an int"),
    (dict(protocols="random"), TypeError, "not the string 'random'"),
])
def test_arguments_the_metric_would_coerce_are_refused(options, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        ShiftConsistency(**options)


@pytest.mark.parametrize("head, fragment", [
    (nn.Linear(4, 1), "a single output column"),
    (nn.Sequential(nn.Linear(4, 3), nn.Flatten(0)), "not class logits"),
])
def test_outputs_that_are_not_class_logits_are_refused(head, fragment):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    images, labels, indices = batch()
    with pytest.raises(UsageError, match=fragment):
        ShiftConsistency().update(model, images, torch.zeros_like(labels), indices)


def test_the_augshift_wrapper_is_refused_naming_the_model_to_pass():
    from augshift import AugShift

    model = tiny_classifier()
    images, labels, indices = batch()
    with pytest.raises(UsageError, match=r"pass the model you wrapped \(augshift.model\)"):
        ShiftConsistency().update(AugShift(model, classifier="4"), images, labels, indices)


# ---------------------------------------------------------------------------------------------- registration

@pytest.mark.parametrize("name, salt", [("half", 600.5), (7, 600), ("flag", True)])
def test_a_protocol_is_checked_when_registered(name, salt):
    with pytest.raises(UsageError, match=r"a protocol's name is a str and its salt an int.*registered: random, "):
        register_protocol(ShiftProtocol(name, salt=salt))
    assert name not in PROTOCOLS


class Shrink(ShiftProtocol):
    """Its views are the images shrunk to half their size and shifted there: another size than the base view."""

    def view(self, images, base, dx, dy, geometry):
        return torch.roll(nn.functional.avg_pool2d(base, 2), (1, 1), (-2, -1))


@pytest.fixture
def shrink():
    with registered(Shrink("shrink", salt=640)) as protocol:
        yield protocol


def test_a_registered_view_of_another_size_is_scored_at_the_default_chunk_size(shrink):
    model = tiny_classifier().eval()
    images, labels, indices = batch()
    metric = ShiftConsistency(protocols=("random", "shrink"))  # the default chunk size packs every view together
    metric.update(model, images, labels, indices)
    assert metric.compute().agree["shrink"] == len(images)  # its two views are the same image: they always agree


# ---------------------------------------------------------------------------------------------- commands

def test_consistency_refuses_an_out_folder_owned_by_another_result_before_evaluating(tmp_path, capsys, monkeypatch):
    import augshift.cli.consistency as consistency

    (tmp_path / "other.json").write_text(json.dumps({"files": {"consistency.md": "0"}}))
    monkeypatch.setattr(consistency, "evaluate_shift_consistency", lambda *a, **k: pytest.fail("evaluated first"))
    code = augshift_main(["consistency", "--model", "test_resnet", "--num-classes", "3", "--data", "shapes",
                          "--eval-limit", "4", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    refused(code, err, "holds another result whose files this one would replace (consistency.md, listed by "
                       "other.json)")


def test_a_result_replaced_by_another_command_is_named(tmp_path, capsys):
    from augshift.reporting.results import write_results

    write_results(tmp_path, "r", {"command": "augshift consistency --model a"}, "| a |")
    capsys.readouterr()
    write_results(tmp_path, "r", {"command": "augshift consistency --model b"}, "| b |")
    err = capsys.readouterr().err
    assert "held the result of another command (augshift consistency --model a); replacing it" in err
    write_results(tmp_path, "r", {"command": "augshift consistency --model b"}, "| b |")  # the same command again
    assert capsys.readouterr().err == ""


def test_ctrl_c_in_a_command_is_one_line_and_the_previous_result_is_intact(tmp_path, capsys, monkeypatch,
                                                                          ctrl_c_raises):
    import augshift.cli.consistency as consistency

    (tmp_path / "consistency.md").write_text("previous")

    def interrupt(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("not interrupted")

    monkeypatch.setattr(consistency, "evaluate_shift_consistency", interrupt)
    code = augshift_main(["consistency", "--model", "test_resnet", "--num-classes", "10", "--data", "shapes",
                          "--eval-limit", "4", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and err == [f"augshift: interrupted; the previous result in {tmp_path} is intact"]
    assert (tmp_path / "consistency.md").read_text() == "previous"


def test_the_trainer_refuses_evaluation_data_without_labels_in_one_line(tmp_path):
    transformers = pytest.importorskip("transformers")
    from augshift.integrations.transformers import AugShiftTrainer

    model = transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=16, patch_size=8,
        num_labels=3))
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True,
                                          remove_unused_columns=False)
    unlabelled = [{"pixel_values": torch.randn(3, 16, 16)} for _ in range(4)]
    trainer = AugShiftTrainer(model=model, args=args, eval_dataset=unlabelled)
    with pytest.raises(UsageError, match="AugShiftTrainer scores class labels, and this batch has none"):
        trainer.evaluate()
    assert math.isfinite(sum(p.sum().item() for p in model.parameters()))


@pytest.mark.parametrize("variants", ["99", "a", "0,0", ""])
def test_ablation_variants_are_numbers_of_the_table_each_once(variants, tmp_path, capsys, no_training):
    import ablation

    argv = ["--variants", variants, "--train-limit", "32", "--eval-limit", "16", "--epochs", "1", "--seeds", "0",
            "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    refused(*run_script(ablation, argv, capsys), f"--variants {variants!r}: expected distinct numbers from 0 to")
