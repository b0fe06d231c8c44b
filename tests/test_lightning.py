"""The PyTorch Lightning integration (`AugShiftCallback`): in-process on a tiny model, and against Lightning's
unmodified official ImageNet template (``imagenet.py``, LightningCLI) on 1 and 2 CPU processes."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("lightning")
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from augshift.errors import UsageError  # noqa: E402
from augshift.integrations.lightning import AugShiftCallback  # noqa: E402
from augshift.metrics import evaluate_shift_consistency  # noqa: E402
from augshift.models.small_cnn import create_small_cnn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT.parent / "shared" / "upstream" / "lightning" / "imagenet.py"
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10" / "test-00000-of-00001.parquet"
VAL_IMAGES = 29  # odd: two processes' DistributedSampler pads the last shard with a repeat
SEED = 42  # the template's seed_everything_default


class Tiny(LightningModule):
    """A plain LightningModule, as users write them: (images, labels) batches, cross-entropy."""

    def __init__(self, network: nn.Module | None = None, lr: float = 0.1) -> None:
        super().__init__()
        self.model = network if network is not None else create_small_cnn(3, width=4)
        self.lr = lr

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        self.log("val_loss", F.cross_entropy(self(images), labels))

    def test_step(self, batch, batch_idx):
        images, labels = batch
        self.log("test_loss", F.cross_entropy(self(images), labels))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def tiny_data(n: int = 24, *, seed: int = 0, classes: int = 3) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 16, 16, generator=generator), torch.randint(0, classes, (n,), generator=generator))


def trainer(*callbacks, epochs: int = 1, **options) -> Trainer:
    options = {"logger": False, "enable_checkpointing": False, **options}
    return Trainer(accelerator="cpu", max_epochs=epochs, callbacks=list(callbacks), enable_progress_bar=False,
                   enable_model_summary=False, **options)


def fit(callbacks=(), *, seed: int = 0, module: LightningModule | None = None, **options) -> tuple[LightningModule, Trainer]:
    seed_everything(seed)
    module = module if module is not None else Tiny()
    data = tiny_data()
    run = trainer(*callbacks, **options)
    run.fit(module, DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=8))
    return module, run


class BatchRecorder(Callback):
    """Keeps the last training batch."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.last = batch


def weights(module: nn.Module) -> dict:
    return {key: value.clone() for key, value in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


# ----------------------------------------------------------------------------------------- in-process (fast)

def test_augshift_changes_the_loss_and_leaves_a_plain_run_untouched():
    plain, _ = fit()
    before = weights(plain)
    augshift = AugShiftCallback(max_shift=2, weight=1.0)
    module, batches, seen = Tiny(), BatchRecorder(), []  # the classifier's input and output in training forwards
    module.model.fc.register_forward_hook(
        lambda fc, args, logits: seen.append((args[0].detach(), logits.detach())) if fc.training else None)
    trained, run = fit([augshift, batches], module=module)
    assert "training_step" not in vars(trained)  # the instance's own step back after fit
    # the last step's logged values by hand: CE of the classifier on both views + 1 * cosine distance of the pooled
    # features of view A (rows 0-7) and view B (rows 8-15); the classifier as it was in that step's forward
    (features, logits), labels = seen[-1], batches.last[1]
    consistency = (1 - F.cosine_similarity(features[:8], features[8:], dim=1)).mean()
    assert float(run.callback_metrics["train_consistency"]) == pytest.approx(float(consistency), rel=1e-5)
    criterion = F.cross_entropy(logits, torch.cat([labels, labels]))
    assert float(run.callback_metrics["train_loss"]) == pytest.approx(float(criterion + consistency), rel=1e-5)
    assert not same(weights(trained), before)
    again, _ = fit()  # a plain run after one with AugShift: nothing global was patched
    assert same(weights(again), before)
    evaluated, eval_run = fit([AugShiftCallback(max_shift=2, train=False)])  # evaluation only: training as plain
    assert same(weights(evaluated), before)
    assert "val_shift_consistency" in eval_run.callback_metrics and "train_consistency" not in eval_run.callback_metrics


def test_shifts_are_replayed_per_step_and_differ_per_rank(monkeypatch):
    data = tiny_data(8)
    losses = []
    for rank in (0, 0, 1):
        monkeypatch.setattr(Trainer, "global_rank", property(lambda self: rank))  # what DDP gives each process
        callback = AugShiftCallback(max_shift=3, seed=5)
        torch.manual_seed(1)
        module = Tiny()  # the same weights each time
        run = trainer(callback)
        callback.setup(run, module, "fit")
        torch.manual_seed(rank + 10)  # the global generator is not what draws the shifts
        module.log = lambda *args, **kwargs: None
        losses.append(float(module.training_step(data.tensors, 0).detach()))
        callback.teardown(run, module, "fit")
        assert "training_step" not in vars(module)
    assert losses[0] == losses[1] != losses[2]


def test_validation_metric_counts_every_sample_once_as_plain_torch_does():
    data = tiny_data(21, seed=3)
    callback = AugShiftCallback(max_shift=3, protocols=["random", "circular"], seed=7)
    module = Tiny()
    run = trainer(callback)
    validated = run.validate(module, DataLoader(data, batch_size=4))[0]
    reference = evaluate_shift_consistency(module.model, [(*data.tensors, torch.arange(len(data)))],
                                           max_shift=3, protocols=["random", "circular"], seed=7)
    assert callback.report.samples == len(data) == 21
    assert callback.report.outcomes["index"].tolist() == list(range(21))
    assert validated["val_shift_consistency"] == pytest.approx(reference.agree["random"] / 21, abs=1e-6)
    assert validated["val_shift_consistency_circular"] == pytest.approx(reference.agree["circular"] / 21, abs=1e-6)
    tested = run.test(module, DataLoader(data, batch_size=5))[0]  # another batching: the same samples, views
    assert tested["test_shift_consistency"] == validated["val_shift_consistency"]


class PlantedPosition(nn.Module):
    """A classifier whose shift consistency is planted per epoch: a globally pooled CNN plus ``strength`` times a
    position-dependent term (the top-left pixels), which shifts move."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, 3)
        self.probe = nn.Linear(3 * 4 * 4, 3, bias=False)
        self.strength = 0.0

    def forward(self, x):
        return self.fc(self.body(x)) + self.strength * self.probe(x[..., :4, :4].flatten(1))


class PlantStrength(Callback):
    def __init__(self, strengths: list[float]) -> None:
        self.strengths, self.seen = strengths, []

    def on_train_epoch_start(self, trainer, pl_module):
        pl_module.model.strength = self.strengths[trainer.current_epoch]

    def on_validation_end(self, trainer, pl_module):  # after the metric is logged (epoch end), as ModelCheckpoint
        if not trainer.sanity_checking:
            self.seen.append(float(trainer.callback_metrics["val_shift_consistency"]))


def test_model_checkpoint_monitors_val_shift_consistency(tmp_path):
    planted = PlantStrength([100.0, 0.0, 100.0])
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val_shift_consistency", mode="max", filename="{epoch}")
    module = Tiny(PlantedPosition(), lr=0.0)  # lr 0: only the planted strength changes between epochs
    fit([AugShiftCallback(max_shift=3, train=False), planted, checkpoint], module=module, epochs=3,
        enable_checkpointing=True)
    best = max(range(3), key=lambda epoch: (planted.seen[epoch], -epoch))  # the first best, as ModelCheckpoint keeps
    assert planted.seen[1] > planted.seen[0] and planted.seen[1] > planted.seen[2]  # the plant took effect
    assert Path(checkpoint.best_model_path).name == f"epoch={best}.ckpt" == "epoch=1.ckpt"
    assert float(checkpoint.best_model_score) == planted.seen[1]


def test_frozen_backbone_is_refused():
    module = Tiny()
    for name, parameter in module.model.named_parameters():
        parameter.requires_grad = name.startswith("fc.")
    with pytest.raises(UsageError, match="unfreeze the backbone"):
        fit([AugShiftCallback(max_shift=2)], module=module)


def test_a_classifier_fed_a_flattened_map_is_refused():
    network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 16 * 16, 3))
    with pytest.raises(UsageError, match="pool globally before the classifier"):
        fit([AugShiftCallback(max_shift=2, classifier="model.2")], module=Tiny(network))


def test_a_module_whose_classifier_cannot_be_found_is_told_to_name_it():
    network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(UsageError, match="classifier='model.fc'"):
        fit([AugShiftCallback(max_shift=2)], module=Tiny(network))


def test_bad_labels_and_options_are_refused():
    class Predicting(Tiny):
        def validation_step(self, batch, batch_idx):  # no loss of its own: the labels reach the metric first
            self(batch[0])

    data = TensorDataset(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 7]))  # class 7 of a 3-class model
    with pytest.raises(UsageError, match=r"labels must be class indices in \[0, 3\)"):
        trainer(AugShiftCallback(max_shift=2)).validate(Predicting(), DataLoader(data, batch_size=4))
    with pytest.raises(UsageError, match="unknown shift mode"):
        AugShiftCallback(mode="wrap")
    with pytest.raises(UsageError, match="act only when AugShift trains"):
        AugShiftCallback(weight=3.0, train=False)


def test_several_processes_without_a_fixed_sample_order_are_refused(monkeypatch):
    from augshift.integrations.lightning import numbering

    data = tiny_data(6)
    ordered = numbering.batch_indices(DataLoader(data, batch_size=4), stage="validate")
    assert ordered == [[0, 1, 2, 3], [4, 5]]
    assert numbering.batch_indices(DataLoader(data, batch_size=4, shuffle=True), stage="validate") is None  # 1 process
    monkeypatch.setattr(numbering, "world_size", lambda: 2)
    with pytest.raises(UsageError, match="no shuffling, or evaluate on one process"):
        numbering.batch_indices(DataLoader(data, batch_size=4, shuffle=True), stage="validate")


def test_augshift_and_the_other_integrations_never_import_lightning():
    code = ("import sys, augshift, augshift.integrations.accelerate, augshift.integrations.timm, "
            "augshift.integrations.transformers; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('lightning', 'pytorch_lightning', 'torchmetrics')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------- the official template

@pytest.fixture(scope="module")
def image_folders(tmp_path_factory) -> Path:
    """``DIR/train`` (60 images) and ``DIR/val`` (29) image folders of three CIFAR-10 classes."""
    if not TEMPLATE.is_file():
        pytest.skip(f"Lightning's imagenet.py template not found at {TEMPLATE}")
    if not CIFAR10.is_file():
        pytest.skip(f"shared CIFAR-10 parquet not found at {CIFAR10}")
    import pyarrow.parquet as pq
    from PIL import Image

    rows = [row for row in pq.read_table(CIFAR10).to_pylist() if row["label"] in (0, 1, 2)]
    root = tmp_path_factory.mktemp("folders")
    for split, part in (("train", rows[:60]), ("val", rows[60:60 + VAL_IMAGES])):
        for i, row in enumerate(part):
            folder = root / split / f"class{row['label']}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.open(io.BytesIO(row["img"]["bytes"])).convert("RGB").save(folder / f"{i:03d}.png")
    return root


class BufferProbe(Callback):
    """Added to the template from the command line: each process writes the digest of the network's buffers it
    evaluates with (``buffers-<rank>.txt`` in ``folder``)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            (self.folder / f"buffers-{trainer.global_rank}.txt").write_text(digest(dict(pl_module.model.named_buffers())))


def digest(buffers: dict) -> str:
    import hashlib

    return hashlib.sha256(b"".join(buffers[name].cpu().numpy().tobytes() for name in sorted(buffers))).hexdigest()


# DDP that leaves the buffers alone (DDP's default copies rank 0's at every forward, validation's included; with
# broadcast_buffers false, as SyncBatchNorm users run, each process keeps the statistics of its own last batches)
OWN_BUFFERS = '{"class_path": "lightning.pytorch.strategies.DDPStrategy", "init_args": {"broadcast_buffers": false}}'


def template(command: str, data: Path, *options: str, processes: int = 1, report: Path | None = None,
             augshift: bool = True, strategy: str = "ddp") -> str:
    """Run the unmodified template; returns its output."""
    args = [sys.executable, str(TEMPLATE), command, "--model.data_path", str(data), "--trainer.accelerator", "cpu",
            "--model.batch_size", "8", "--model.workers", "0"]
    if processes > 1:
        args += ["--trainer.strategy", strategy, "--trainer.devices", str(processes)]
    if augshift:  # the callback first: its --trainer.callbacks.<option> flags (in options) follow it
        args += ["--trainer.callbacks+=augshift.integrations.lightning.AugShiftCallback",
                 "--trainer.callbacks.max_shift", "4"]
        if report is not None:
            args += ["--trainer.callbacks.report", str(report)]
    args += options
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=data)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout + done.stderr


def reference(checkpoint: Path, data: Path) -> dict:
    """Plain torch: the checkpoint's resnet18 over the val folder (the template's own transforms), numbered 0..28."""
    import torchvision
    import torchvision.transforms as T

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    network = torchvision.models.resnet18()
    network.load_state_dict({key[len("model."):]: value for key, value in state.items() if key.startswith("model.")})
    dataset = torchvision.datasets.ImageFolder(str(data / "val"), T.Compose([
        T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor(dataset.targets)
    report = evaluate_shift_consistency(network, [(images, labels, torch.arange(len(dataset)))], max_shift=4,
                                        seed=SEED)
    return {"val_shift_consistency": report.agree["random"] / report.samples,
            "val_shift_consistency_circular": report.agree["circular"] / report.samples,
            "samples": report.samples, "correct": report.correct}


@pytest.mark.slow
def test_template_trained_on_two_processes_validates_identically_on_one_and_two(image_folders, tmp_path):
    hand_count = len(list((image_folders / "val").rglob("*.png")))
    assert hand_count == VAL_IMAGES
    out = tmp_path / "fit"
    template("fit", image_folders, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
             "--model.lr", "0.01", "--trainer.default_root_dir", str(out),
             "--trainer.callbacks+=test_lightning.BufferProbe", "--trainer.callbacks.folder", str(tmp_path),
             processes=2, strategy=OWN_BUFFERS, report=tmp_path / "fit.json")
    (checkpoint,) = (out / "checkpoints").glob("*.ckpt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    import torchvision

    saved = digest({name: state[f"model.{name}"] for name, _ in torchvision.models.resnet18().named_buffers()})
    evaluated = [(tmp_path / f"buffers-{rank}.txt").read_text() for rank in (0, 1)]
    assert evaluated == [saved, saved]  # both processes evaluated the BatchNorm statistics rank 0 saved
    reports = {"fit on 2": json.loads((tmp_path / "fit.json").read_text())}
    for processes in (1, 2):
        log = template("validate", image_folders, "--ckpt_path", str(checkpoint), processes=processes,
                       report=tmp_path / f"validate{processes}.json")
        assert "val_shift_consistency" in log
        reports[f"validate on {processes}"] = json.loads((tmp_path / f"validate{processes}.json").read_text())
    expected = reference(checkpoint, image_folders)
    assert 0 < expected["val_shift_consistency"] < 1  # a model whose consistency the shifts can move
    for name, report in reports.items():
        assert report["samples"] == hand_count, name  # every image once, the padded repeat too
        assert report["outcomes"]["index"] == list(range(hand_count)), name
        assert report["metrics"] == {key: expected[key] for key in report["metrics"]}, name
        assert round(report["accuracy"] * hand_count / 100) == expected["correct"], name
    assert reports["validate on 2"]["processes"] == 2 and reports["fit on 2"]["processes"] == 2
    assert reports["validate on 1"]["outcomes"] == reports["validate on 2"]["outcomes"] == reports["fit on 2"]["outcomes"]


@pytest.mark.slow
def test_template_plain_run_is_unchanged_by_an_evaluating_callback(image_folders, tmp_path):
    options = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]
    template("fit", image_folders, *options, "--trainer.default_root_dir", str(tmp_path / "plain"), augshift=False)
    template("fit", image_folders, *options, "--trainer.default_root_dir", str(tmp_path / "eval"),
             "--trainer.callbacks.train", "false")
    template("fit", image_folders, *options, "--trainer.default_root_dir", str(tmp_path / "augshift"),
             report=tmp_path / "augshift.json")
    state = {name: torch.load(next((tmp_path / name / "checkpoints").glob("*.ckpt")), map_location="cpu",
                              weights_only=False)["state_dict"] for name in ("plain", "eval", "augshift")}
    assert same(state["plain"], state["eval"])
    assert not same(state["plain"], state["augshift"])
