"""timm integration: AugShiftTask unit tests (fast) and the real train.py through augshift-timm (slow)."""
from __future__ import annotations

import argparse
import csv
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.task import ClassificationTask
from torch import nn

from augshift.config import DEFAULTS, AugShiftConfig
from augshift.integrations.timm import AugShiftTask, launcher, main, script
from augshift.integrations.timm.consistency import loader_shift_consistency
from augshift.integrations.timm.script import TrainScriptError
from augshift.metrics import evaluate_shift_consistency
from augshift.shifts import RandomShift
from helpers import pad_and_slice

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "integrations" / "timm" / "README.md"
SECTION = "Add AugShift to a timm run"
CONSISTENCY_COLUMNS = ["eval_shift_consistency", "eval_shift_consistency_circular"]
LOSS_COLUMNS = ["train_augshift_criterion", "train_augshift_consistency"]
TRAIN, VAL = 20, 10  # images per class; VAL + 1 extra so 2 processes need a padding repeat
VAL_SAMPLES = 10 * VAL + 1


# ---------------------------------------------------------------------------------------------- fast


def tiny_resnet() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet18", num_classes=10).eval()  # eval: BN does not mix the two views


@pytest.mark.parametrize("criterion,soft", [
    (nn.CrossEntropyLoss(), False), (LabelSmoothingCrossEntropy(0.1), False), (SoftTargetCrossEntropy(), True),
])
def test_task_loss_is_criterion_on_both_views_plus_weighted_consistency(criterion, soft):
    model, n = tiny_resnet(), 4
    images = torch.randn(n, 3, 32, 32)
    targets = torch.softmax(torch.randn(n, 10), 1) if soft else torch.tensor([0, 3, 3, 9])
    task = AugShiftTask(model, criterion, config=AugShiftConfig(max_shift=3, weight=0.5, distance="mse"), verbose=False,
                        generator=torch.Generator().manual_seed(7))
    result = task(images, targets)
    assert set(result) == {"loss", "output", "criterion", "consistency"}

    replay = RandomShift(3, generator=torch.Generator().manual_seed(7))  # the same draws: view A, then B
    a, b = replay.sample(n), replay.sample(n)
    views = torch.cat([pad_and_slice(images, a.dx, a.dy), pad_and_slice(images, b.dx, b.dy)])
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(views), pre_logits=True)  # timm's own path
        logits = model.get_classifier()(pooled)
    expected_criterion = criterion(logits, torch.cat([targets, targets]))
    expected_consistency = F.mse_loss(pooled[:n], pooled[n:])
    assert torch.allclose(result["output"], logits[:n], atol=1e-5)
    assert result["criterion"].item() == pytest.approx(expected_criterion.item(), rel=1e-5)
    assert result["consistency"].item() == pytest.approx(expected_consistency.item(), rel=1e-4)
    assert result["loss"].item() == pytest.approx((expected_criterion + 0.5 * expected_consistency).item(), rel=1e-5)
    result["loss"].backward()
    assert model.get_classifier().weight.grad is not None
    assert task.loss_parts(sync=False) == pytest.approx(
        {"criterion": expected_criterion.item(), "consistency": expected_consistency.item()}, rel=1e-4)


def test_cpu_ddp_runs_through_the_wrapper_and_matches_the_plain_task(tmp_path):
    """One-process gloo group: timm's own task cannot wrap a CPU model in DDP; ours can, with equal gradients."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="device_ids"):
            ClassificationTask(tiny_resnet(), nn.CrossEntropyLoss(), verbose=False).prepare_distributed(
                device_ids=[torch.device("cpu")])
        images, targets = torch.randn(3, 3, 32, 32), torch.tensor([1, 2, 3])
        grads = []
        for distributed in (False, True):
            model, pooled = tiny_resnet(), []
            model.fc.register_forward_pre_hook(lambda module, args: pooled.append(args[0].detach()))
            task = AugShiftTask(model, nn.CrossEntropyLoss(), verbose=False,
                                generator=torch.Generator().manual_seed(1), device=torch.device("cpu"))
            if distributed:
                task.prepare_distributed(device_ids=[torch.device("cpu")])
                assert isinstance(task.get_trainable_module(), nn.parallel.DistributedDataParallel)
            task(images, targets)["loss"].backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
            a, b = pooled[0][:3], pooled[0][3:]  # the pooled features of the two views
            by_hand = float((1 - F.cosine_similarity(a, b, dim=1)).mean())  # the default distance, cosine
            assert task.loss_parts(sync=True)["consistency"] == pytest.approx(by_hand, rel=1e-5)
        assert torch.allclose(grads[0], grads[1], atol=1e-6)
    finally:
        dist.destroy_process_group()


def test_ema_compile_and_checkpoint_keep_the_plain_model():
    model = tiny_resnet()
    plain_keys = list(model.state_dict())
    args = argparse.Namespace(augshift=True, augshift_permute="layer3", augshift_max_shift=2, augshift_mode="zeros",
                              augshift_weight=1.0, augshift_distance=DEFAULTS.distance, augshift_normalize=False,
                              seed=0, rank=0, log_interval=0)
    task = launcher.task_factory(args)(model=model, criterion=nn.CrossEntropyLoss(), verbose=False)
    assert isinstance(task, AugShiftTask) and isinstance(task, ClassificationTask)
    with torch.no_grad():  # the PermuteNet hook: the same image gives different outputs
        x = torch.randn(2, 3, 32, 32)
        assert not torch.allclose(model(x), model(x))
    task.setup_ema(decay=0.5)
    pooled = []
    model.fc.register_forward_pre_hook(lambda module, args: pooled.append(args[0].detach()))
    task.compile(backend="eager")
    images, targets = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for _ in range(2):
        result = task(images, targets)
        result["loss"].backward()
        task.update_ema(step=1)
    features = pooled[-1]  # (8, 512): both views of the last step, through the permuting layer3
    with torch.no_grad():  # CE of the classifier on both views + weight 1 * cosine distance of the pooled features
        by_hand = (F.cross_entropy(model.fc(features), torch.cat([targets, targets]))
                   + (1 - F.cosine_similarity(features[:4], features[4:], dim=1)).mean())
    torch.testing.assert_close(result["loss"].detach(), by_hand, rtol=1e-5, atol=1e-6)
    for ema in (False, True):
        state = task.get_checkpoint_state(ema=ema)["state_dict_ema" if ema else "state_dict"]
        assert list(state) == plain_keys
        timm.create_model("resnet18", num_classes=10).load_state_dict(state)  # strict


def consistency_case(n: int = 23):
    """A small float64 model (no near-ties between classes) and ``n`` images with labels."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 5, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten()).double().eval()
    return model, torch.randn(n, 3, 8, 8, dtype=torch.float64), torch.randint(0, 5, (n,))


def reference_consistency(model, images, labels) -> dict:
    """The core metric over all samples in one batch, keyed by their dataset indices."""
    batches = [(images, labels, torch.arange(len(images)))]
    return evaluate_shift_consistency(model, batches, device=torch.device("cpu"), max_shift=2).to_dict()


def loader_consistency(rank: int = 0, world: int = 1) -> dict:
    from timm.data.distributed_sampler import OrderedDistributedSampler
    from torch.utils.data import DataLoader, TensorDataset

    model, images, labels = consistency_case()
    dataset = TensorDataset(images, labels)
    sampler = OrderedDistributedSampler(dataset, num_replicas=world, rank=rank) if world > 1 else None
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)  # as timm's eval loader
    return loader_shift_consistency(model, loader, device=torch.device("cpu"), max_shift=2, chunk_size=8).to_dict()


def test_loader_consistency_equals_the_core_metric_on_one_process():
    report = loader_consistency()
    assert report == reference_consistency(*consistency_case())
    assert report["samples"] == 23 and report["consistency_random"] < 100  # the shifts change predictions


def consistency_worker(rank: int, rendezvous: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        report = loader_consistency(rank, 2)
        if rank == 0:
            torch.save(report, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_loader_consistency_counts_every_sample_once(tmp_path):
    """23 samples on 2 processes: timm's sampler pads one repeat; the counts still equal one process's."""
    torch.multiprocessing.spawn(consistency_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path / "report")),
                                nprocs=2)
    report = torch.load(tmp_path / "report")
    assert report == reference_consistency(*consistency_case()) and report["samples"] == 23


def write_train_py(path: Path, drop: str) -> Path:
    names = [name for name in script.CONTRACT if name != drop]
    lines = ["import argparse", "from timm.task import ClassificationTask", "parser = argparse.ArgumentParser()"]
    lines += [f"def {name}(model, loader, loss_fn, args, **kwargs): pass" for name in names
              if name not in ("parser", "ClassificationTask")]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_train_py_without_the_contract_is_refused_by_name(tmp_path, capsys):
    for name in ("validate", "_parse_args"):
        with pytest.raises(TrainScriptError, match=rf"no module-level {name}; .*timm >= 1\.0\.27"):
            script.load_train_script(str(write_train_py(tmp_path / f"no{name}.py", name)))
    assert main([str(tmp_path / "novalidate.py"), "--augshift"]) == 2
    assert "validate" in capsys.readouterr().err
    script.load_train_script(str(write_train_py(tmp_path / "full.py", "")))  # the complete contract passes


def test_flags_show_in_train_py_help_and_bad_combinations_are_refused(timm_train_py, capsys, monkeypatch):
    with pytest.raises(SystemExit) as done:
        main([str(timm_train_py), "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--augshift-permute" in out and "--lr-base" in out  # ours and train.py's own
    train = script.load_train_script(str(timm_train_py))
    launcher.install(train)
    refused = {
        ("--eval-metric", "shift_consistency"): "needs --augshift-consistency",
        ("--augshift", "--jsd-loss", "--aug-splits", "2"): "do not support",
        ("--augshift-weight", "0.5"): "--augshift-weight would be ignored: add --augshift",
        ("--augshift-max-shift", "-1"): "would be ignored",
        ("--augshift-consistency", "--augshift-distance", "mse"): "--augshift-distance would be ignored",
        ("--augshift", "--augshift-max-shift", "-1"): "max_shift must be >= 0",
        ("--augshift", "--augshift-weight", "nan"): "finite",
    }
    for bad, message in refused.items():
        monkeypatch.setattr(sys, "argv", ["train.py", *bad])
        with pytest.raises(SystemExit) as done:
            train._parse_args()
        assert done.value.code == 2 and message in capsys.readouterr().err, bad
    assert train.ClassificationTask is ClassificationTask  # nothing replaced
    monkeypatch.setattr(sys, "argv", ["train.py", "--augshift-consistency"])
    args, text = train._parse_args()
    assert yaml.safe_load(text)["augshift_consistency"] is True
    assert train.ClassificationTask is not ClassificationTask and train.validate.__wrapped__


def test_without_flags_the_launcher_changes_nothing_of_train_py(timm_train_py, tmp_path, monkeypatch):
    """The fast form of the slow run below: ``augshift-timm TRAIN_PY ARGS`` without an ``--augshift*`` flag parses
    the arguments exactly as ``python TRAIN_PY ARGS`` does (plus its own options, switched off) and leaves every name of
    train.py as it was (task, training epoch, validation, ...), so ``main()`` runs plain train.py's code."""
    arguments = [*common_args(tmp_path / "data", tmp_path / "out", "resnet18"), "--lr", "0.2"]
    monkeypatch.setattr(sys, "argv", [str(timm_train_py), *arguments])
    plain_args, plain_text = script.load_train_script(str(timm_train_py))._parse_args()
    seen = {}
    load = launcher.load_train_script

    def load_and_watch(path):
        train = load(path)
        seen["before"] = dict(vars(train))

        def main():  # what train.py's main() starts with; the module as main() would find it
            seen["args"], seen["text"] = train._parse_args()
            seen["after"] = dict(vars(train))

        train.main = main
        seen["before"]["main"] = main
        return train

    monkeypatch.setattr(launcher, "load_train_script", load_and_watch)
    assert launcher.main([str(timm_train_py), *arguments]) == 0
    ours = vars(seen["args"])
    added = {key: ours.pop(key) for key in list(ours) if key.startswith("augshift")}
    assert ours == vars(plain_args)
    assert (added["augshift"], added["augshift_consistency"], added["augshift_permute"]) == (False, False, None)
    text = yaml.safe_load(seen["text"])
    assert {key: value for key, value in text.items() if not key.startswith("augshift")} == yaml.safe_load(plain_text)
    changed = [name for name, value in seen["after"].items() if seen["before"].get(name, object()) is not value]
    assert changed == ["_parse_args"]  # only the hook that reads the flags; ClassificationTask, validate... as loaded


# ---------------------------------------------------------------------------------------------- slow

HASH_MODULE = '''
"""Test hook for train.py --device-modules: each process writes digests of its model at creation and at the end."""
import os, sys
import torch.distributed as dist
from timm.utils import unwrap_model
from augshift.integrations.accelerate.checkpoints import weights_digest
from augshift.integrations.timm import script

train = sys.modules.get(script.TRAIN_MODULE) or sys.modules["__main__"]  # augshift-timm's, or python train.py
build, tasks = train.ClassificationTask, []

def record(*args, **kwargs):
    task = build(*args, **kwargs)
    tasks.append(task)
    write("init")
    return task

def write(stage):
    rank = dist.get_rank() if dist.is_initialized() else 0
    folder = os.path.join(os.environ["AUGSHIFT_DIGESTS"], sys.argv[sys.argv.index("--experiment") + 1])
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{stage}-{rank}"), "w") as f:
        f.write(weights_digest(unwrap_model(tasks[0].get_trainable_module())))

destroy = dist.destroy_process_group

def final_then_destroy(*args, **kwargs):
    write("final")
    return destroy(*args, **kwargs)

train.ClassificationTask = record
dist.destroy_process_group = final_then_destroy
'''


@pytest.fixture(scope="session")
def image_folder(cifar10_dir, tmp_path_factory) -> Path:
    """CIFAR-10 PNGs: train/<class>/ (20 per class) and validation/<class>/ (10 per class + 1)."""
    from PIL import Image

    from augshift.data.hub import load_image_dataset, to_tensors

    root = tmp_path_factory.mktemp("cifar10-folder")
    for split, source, per_class, extra in (("train", "train", TRAIN, 0), ("validation", "test", VAL, 1)):
        images, labels = to_tensors(load_image_dataset(str(cifar10_dir), source), limit=400)
        taken: dict[int, int] = {}
        for image, label in zip(images, labels.tolist()):
            if taken.get(label, 0) >= per_class + (extra if label == 0 else 0):
                continue
            taken[label] = taken.get(label, 0) + 1
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{taken[label]:03d}.png")
        assert sum(taken.values()) == 10 * per_class + extra
    return root


@pytest.fixture
def run_env(tmp_path) -> dict:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "augshift_rank_digest.py").write_text(HASH_MODULE)
    (tmp_path / "digests").mkdir()
    return {**os.environ, "OMP_NUM_THREADS": "1", "AUGSHIFT_DIGESTS": str(tmp_path / "digests"),
            "PYTHONPATH": os.pathsep.join([str(tmp_path / "hooks"), os.environ.get("PYTHONPATH", "")])}


TEST_OPTIONS = ("--device cpu --workers 0 --batch-size 16 --log-interval 4 --seed 0 "
                "--device-modules augshift_rank_digest")


def run(command, env: dict, cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          shell=isinstance(command, str), executable="/bin/bash" if isinstance(command, str) else None)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    return log


def common_args(data: Path, output: Path, model: str) -> list[str]:
    return ["--data-dir", str(data), "--val-split", "validation", "--model", model, "--num-classes", "10",
            "--input-size", "3", "32", "32", "--epochs", "1", "--output", str(output), *shlex.split(TEST_OPTIONS)]


def check_run(experiment: Path, model: str) -> dict:
    """Checks shared by every run: one summary row, consistency counts out of the validation samples, checkpoints that
    load strictly into the plain model; returns the summary row, the options and the plain model."""
    rows = list(csv.DictReader(open(experiment / "summary.csv")))
    assert len(rows) == 1
    row = {key: float(value) for key, value in rows[0].items()}
    options = yaml.safe_load((experiment / "args.yaml").read_text())
    for column in CONSISTENCY_COLUMNS:
        assert 0.0 <= row[column] <= 100.0
        assert round(row[column] * VAL_SAMPLES / 100, 6) % 1 == 0  # a count out of the 101 unique samples
    timm.create_model(model, num_classes=10, checkpoint_path=str(experiment / "last.pth.tar"))  # EMA if saved
    checkpoint = torch.load(experiment / "last.pth.tar", map_location="cpu", weights_only=False)
    plain = timm.create_model(model, num_classes=10)
    plain.load_state_dict(checkpoint["state_dict"])  # strict: the plain model's keys
    for key in set(checkpoint) & {"state_dict_ema"}:
        timm.create_model(model, num_classes=10).load_state_dict(checkpoint[key])
    return {"row": row, "options": options, "plain": plain}


def check_augshift_losses(run: dict) -> None:
    """summary.csv's train loss is the criterion plus the weight times the consistency term."""
    criterion, consistency = (run["row"][column] for column in LOSS_COLUMNS)
    assert run["row"]["train_loss"] == pytest.approx(criterion + run["options"]["augshift_weight"] * consistency,
                                                     rel=1e-5)


def check_processes_agree(experiment: Path, run: dict, digests: Path, processes: int) -> None:
    """timm seeds every process differently, DDP leaves them with the same weights, the checkpoint holds those."""
    from augshift.integrations.accelerate.checkpoints import weights_digest

    digests = digests / experiment.name
    final = {(digests / f"final-{r}").read_text() for r in range(processes)}
    initial = {(digests / f"init-{r}").read_text() for r in range(processes)}
    assert len(initial) == processes and final == {weights_digest(run["plain"])}


def readme_commands() -> str:
    text = DOC.read_text()
    section = text.split(f"## {SECTION}\n", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_readme_section_matches_the_timm_guide():
    guide = (ROOT / "docs" / "guides" / "timm.md").read_text()
    assert guide.startswith(f"# {SECTION}\n") and readme_commands() in guide


@pytest.mark.slow
def test_readme_commands_run_as_written(timm_train_py, image_folder, run_env, tmp_path):
    """The README's commands with the data path, the epochs and the CPU test options substituted."""
    commands = readme_commands()
    assert commands.count("--data-dir data/cifar10") == 1 and commands.count("--epochs 200") == 1
    commands = commands.replace("--data-dir data/cifar10", f"--data-dir {image_folder}")
    commands = commands.replace("--epochs 200", f"--epochs 1 --output {tmp_path / 'output'} {TEST_OPTIONS}")
    commands = commands.replace("output/train/", "output/").replace("--epochs 10 ", "--epochs 1 ")
    (tmp_path / "train.py").symlink_to(timm_train_py)
    log = run("set -euo pipefail\n" + commands, run_env, tmp_path)
    output = tmp_path / "output"
    first = check_run(output / "augshift", "resnet18")
    check_augshift_losses(first)
    assert f"*** Best metric: {first['row']['eval_shift_consistency']} (epoch 0)" in log  # --eval-metric
    for name in ("augshift-torchrun", "augshift-accelerate"):
        launched = check_run(output / name, "resnet18")
        check_augshift_losses(launched)
        check_processes_agree(output / name, launched, tmp_path / "digests", 2)
    permuted = check_run(output / "permutenet", "resnet18")
    assert permuted["options"]["augshift_permute"] == "pool" and not set(LOSS_COLUMNS) & set(permuted["row"])
    configured = check_run(output / "augshift-config", "resnet18")
    check_augshift_losses(configured)
    assert configured["options"]["augshift_weight"] == 0.5 and configured["options"]["augshift"] is True
    plain, tuned = check_run(output / "plain", "resnet18"), check_run(output / "augshift-finetune", "resnet18")
    assert not set(LOSS_COLUMNS) & set(plain["row"]) and tuned["options"]["initial_checkpoint"]
    check_augshift_losses(tuned)
    assert f"Loaded state_dict from checkpoint '{'output/plain/model_best.pth.tar'}'" in log  # the plain weights
    assert log.count("AugShift epoch 0: criterion") == 5
    assert log.count(f"over {VAL_SAMPLES} samples") == 7


@pytest.mark.slow
@pytest.mark.parametrize("model,extra", [
    ("resnetblur18", ["--augshift-weight", "0.3", "--model-ema", "--grad-accum-steps", "2", "--channels-last"]),
    ("mobilenetv3_small_050", ["--augshift-permute", "blocks.2", "--augshift-mode", "reflect",
                               "--amp", "--amp-dtype", "bfloat16", "--smoothing", "0.1"]),
])
def test_models_one_and_two_processes(model, extra, timm_train_py, image_folder, run_env, tmp_path):
    args = [str(timm_train_py), *common_args(image_folder, tmp_path / "out", model), "--augshift",
            "--augshift-consistency", *extra]
    log = run(["augshift-timm", *args, "--experiment", "one"], run_env, tmp_path)
    run(["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "augshift.integrations.timm",
         *args, "--experiment", "two"], run_env, tmp_path)
    check_augshift_losses(check_run(tmp_path / "out" / "one", model))
    two = check_run(tmp_path / "out" / "two", model)
    check_augshift_losses(two)
    check_processes_agree(tmp_path / "out" / "two", two, tmp_path / "digests", 2)
    assert "AugShift step 4: criterion" in log and "AugShiftTask: max_shift=4" in log


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_channels_last_run(timm_train_py, image_folder, run_env, tmp_path):
    args = [str(timm_train_py), *common_args(image_folder, tmp_path / "out", "resnet18"), "--augshift",
            "--augshift-consistency", "--amp", "--channels-last", "--experiment", "cuda"]
    args[args.index("--device") + 1] = "cuda"
    log = run(["augshift-timm", *args], run_env, tmp_path)
    check_augshift_losses(check_run(tmp_path / "out" / "cuda", "resnet18"))
    assert "AugShift step 4: criterion" in log and "cuda" in yaml.safe_load((tmp_path / "out" / "cuda" / "args.yaml").read_text())["device"]


def loss_log(log: str) -> list[str]:
    train = re.findall(r"^Train: .*?(Loss: \S+ \(\S+\))", log, re.M)
    return train + re.findall(r"^Test: .*?(Loss: .*?Acc@5.*)$", log, re.M)


@pytest.mark.slow
def test_without_flags_the_run_is_plain_train_py(timm_train_py, image_folder, run_env, tmp_path):
    args = [*common_args(image_folder, tmp_path / "out", "resnet18"), "--log-interval", "1"]
    plain = run([sys.executable, str(timm_train_py), *args, "--experiment", "plain"], run_env, tmp_path)
    ours = run(["augshift-timm", str(timm_train_py), *args, "--experiment", "ours"], run_env, tmp_path)
    assert len(loss_log(plain)) > 10 and loss_log(ours) == loss_log(plain)
    summaries = [(tmp_path / "out" / name / "summary.csv").read_text() for name in ("plain", "ours")]
    assert summaries[0] == summaries[1] and "augshift" not in summaries[0]
    options = yaml.safe_load((tmp_path / "out" / "ours" / "args.yaml").read_text())
    assert options["augshift"] is False and options["augshift_permute"] is None
