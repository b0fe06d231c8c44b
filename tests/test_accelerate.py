"""AugShift under Hugging Face Accelerate (one process here; two processes in test_accelerate_launch.py)."""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from augshift import AugShift
from augshift.distributed import average_buffers
from augshift.seeding import seed_generator
from augshift.errors import UsageError
from augshift.integrations.accelerate.checkpoints import last_checkpoint, save_checkpoint, weights_digest

ROOT = Path(__file__).resolve().parents[1]
README_HEADING = "## Add AugShift to your own loop"


class TinyNet(nn.Module):
    """conv-BN-ReLU, global average pooling, linear ``fc``: enough to have buffers and pooled features."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean(dim=(2, 3)))


def tiny_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


@pytest.fixture
def fresh_accelerate():
    """Accelerate keeps process-wide singletons; every test gets a fresh one (and leaves none behind)."""
    from accelerate.state import AcceleratorState, GradientState

    def reset() -> None:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()

    reset()
    yield
    reset()


def test_seeded_shifts_differ_per_process_and_epoch_and_replay():
    def draws(epoch: int, rank: int) -> torch.Tensor:
        generator = seed_generator(torch.Generator(), seed=7, epoch=epoch, rank=rank)
        return torch.randint(-4, 5, (64,), generator=generator)

    assert torch.equal(draws(0, 0), draws(0, 0))  # reproducible, e.g. after --resume
    assert not torch.equal(draws(0, 0), draws(0, 1))  # every process its own shifts
    assert not torch.equal(draws(0, 0), draws(1, 0))  # and every epoch
    assert not torch.equal(draws(0, 1), draws(1, 0))  # no (epoch, rank) collisions of seed + epoch + rank


def test_gradient_accumulation_of_prepared_augshift_equals_plain_pytorch(fresh_accelerate):
    from accelerate import Accelerator

    images, labels = torch.randn(16, 3, 12, 12), torch.randint(0, 5, (16,))
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = tiny_net()
    net = AugShift(model, max_shift=2, generator=torch.Generator().manual_seed(3))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    net, optimizer, loader = accelerator.prepare(net, optimizer, loader)
    synced = []
    for x, y in loader:
        with accelerator.accumulate(net):
            accelerator.backward(net(x, y)["loss"])
            synced.append(accelerator.sync_gradients)
            optimizer.step()
            optimizer.zero_grad()

    reference = tiny_net()  # plain PyTorch: the same shifts, loss / 2, a step every second batch
    ref_net = AugShift(reference, max_shift=2, generator=torch.Generator().manual_seed(3))
    ref_optimizer = torch.optim.SGD(ref_net.parameters(), lr=0.5)
    for step, (x, y) in enumerate(zip(images.split(4), labels.split(4))):
        (ref_net(x, y)["loss"] / 2).backward()
        if step % 2 == 1:
            ref_optimizer.step()
            ref_optimizer.zero_grad()

    assert synced == [False, True, False, True]
    assert not torch.equal(model.fc.weight, tiny_net().fc.weight)  # it did train
    for (name, got), want in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


def test_bf16_mixed_precision_runs_the_model_in_bf16_and_trains(fresh_accelerate):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    model = tiny_net()
    dtypes, pooled = [], []
    model.body[0].register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    model.fc.register_forward_pre_hook(lambda module, args: pooled.append(args[0].detach()))
    net = AugShift(model, max_shift=6, weight=20.0, distance="mse", generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net, optimizer = accelerator.prepare(net, optimizer)
    before = model.fc.weight.detach().clone()
    targets = torch.randint(0, 5, (8,))
    result = net(torch.randn(8, 3, 16, 16), targets)
    accelerator.backward(result["loss"])
    optimizer.step()

    assert dtypes == [torch.bfloat16]  # the convolution ran under autocast
    assert result["logits"].shape == (16, 5)  # both views in one forward
    # the loss in float32, by hand from the bf16 logits and pooled features: CE on both views + 20 * MSE
    features = pooled[0].float()
    by_hand = (nn.functional.cross_entropy(result["logits"].float(), torch.cat([targets, targets]))
               + 20.0 * nn.functional.mse_loss(features[:8], features[8:]))
    assert result["loss"].dtype == torch.float32
    torch.testing.assert_close(result["loss"].detach(), by_hand, rtol=1e-6, atol=1e-6)
    assert model.fc.weight.dtype == torch.float32 and not torch.equal(model.fc.weight, before)


def test_average_buffers_is_a_no_op_on_one_process_and_digest_sees_buffers(fresh_accelerate):
    from accelerate import Accelerator

    Accelerator(cpu=True)
    model, copy = tiny_net(), tiny_net()
    model.train()(torch.randn(4, 3, 8, 8))  # updates the BatchNorm running statistics
    digest = weights_digest(model)
    average_buffers(model)
    assert weights_digest(model) == digest
    copy.load_state_dict(model.state_dict())
    assert weights_digest(copy) == digest
    copy.body[1].running_var[0] += 1e-6  # a buffer, not a parameter
    assert weights_digest(copy) != digest


def test_save_checkpoint_is_atomic_and_last_checkpoint_finds_the_newest(fresh_accelerate, tmp_path):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(tiny_net())
    assert last_checkpoint(str(tmp_path)) == (None, 0)
    for epoch in (1, 2, 10):
        save_checkpoint(accelerator, str(tmp_path / f"epoch_{epoch}"))
    (tmp_path / "epoch_11.tmp").mkdir()  # an interrupted save is not a checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1", "epoch_10", "epoch_11.tmp", "epoch_2"]
    assert last_checkpoint(str(tmp_path)) == (str(tmp_path / "epoch_10"), 10)

    saved = weights_digest(model)
    with torch.no_grad():
        model.fc.weight.zero_()
    accelerator.load_state(str(tmp_path / "epoch_10"))
    assert weights_digest(model) == saved


def readme_snippet(readme: Path) -> str:
    """The first fenced python block after the README heading ``README_HEADING``."""
    text = readme.read_text()
    if README_HEADING not in text:
        raise AssertionError(f"{readme} has no section {README_HEADING!r}")
    match = re.search(r"```python\n(.*?)```", text.split(README_HEADING, 1)[1], re.S)
    assert match, f"no ```python block after {README_HEADING!r} in {readme}"
    return match.group(1)


def test_readme_custom_loop_snippet_runs_as_written(fresh_accelerate):
    readme = ROOT / "README.md"
    namespace: dict = {"__name__": "readme_snippet"}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(readme_snippet(readme), str(readme), "exec"), namespace)
    report = namespace["report"]
    assert report.samples == len(namespace["eval_loader"].dataset)  # gathered exactly, no padding
    assert 0 <= report.consistency("random") <= 100 and 0 <= report.accuracy <= 100
    assert namespace["optimizer"].state  # momentum buffers: optimizer steps were taken
    last = stdout.getvalue().splitlines()[-1]  # the last epoch's line: its report, in percent
    assert last == f"1 accuracy {report.accuracy:.2f} consistency {report.consistency('random'):.2f}"
    assert namespace["accelerator"].unwrap_model(namespace["augshift"]).model is namespace["model"]  # what it evaluates


def test_example_loop_one_process_baseline_bf16_refuses_to_overwrite(fresh_accelerate, cifar10_dir, tmp_path):
    from augshift.integrations.accelerate.train import main

    args = ["--data", str(cifar10_dir), "--cpu", "--no-augshift", "--mixed-precision", "bf16", "--epochs", "1",
            "--train-limit", "32", "--eval-limit", "20", "--batch-size", "16", "--eval-batch-size", "8",
            "--output", str(tmp_path)]
    main(args)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    (row,) = metrics["epochs"]
    assert set(row["train"]) == {"loss"} and row["eval"]["samples"] == 20  # baseline: cross-entropy only
    assert metrics["args"]["mixed_precision"] == "bf16" and not metrics["args"]["augshift"]
    with pytest.raises(UsageError, match="pass --resume"):
        main(args)
    main(args + ["--resume"])  # nothing left to train: the checkpoint and metrics stay as they were
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert last_checkpoint(str(tmp_path / "checkpoints")) == (str(tmp_path / "checkpoints" / "epoch_1"), 1)


def test_example_evaluates_the_crop_protocol_on_larger_images_at_the_training_range(fresh_accelerate, cifar10_dir,
                                                                                     tmp_path):
    from augshift.integrations.accelerate.train import main

    main(["--data", str(cifar10_dir), "--cpu", "--epochs", "1", "--train-limit", "16", "--eval-limit", "12",
          "--batch-size", "8", "--max-shift", "2", "--image-size", "32", "--crop-from", "40",
          "--protocols", "random,crop,circular_worst", "--output", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    evaluation = metrics["epochs"][0]["eval"]
    assert evaluation["samples"] == 12 and {"consistency_crop", "consistency_circular_worst"} <= set(evaluation)
    assert "training images" in metrics["normalization"]["source"] and metrics["eval_split"] == "test"
    with pytest.raises(UsageError, match="compares crops of larger images"):
        main(["--data", str(cifar10_dir), "--cpu", "--protocols", "crop", "--output", str(tmp_path / "x")])
    with pytest.raises(SystemExit):  # argparse: --weight acts only with AugShift
        main(["--data", str(cifar10_dir), "--cpu", "--no-augshift", "--weight", "3", "--output", str(tmp_path / "y")])
