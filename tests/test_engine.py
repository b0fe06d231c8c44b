"""The training engine: recipe validation, the one loop against a hand-written loop, fast-path numerics on the
CPU, seeding, and the model factory."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from augshift import AugShiftConfig, RandomShift
from augshift.data import Normalization
from augshift.engine import TensorBatches, TrainConfig, Trainer, fit
from augshift.engine.sources import BatchSource
from augshift.seeding import epoch_seed
from augshift.models import create_model
from augshift.models.stem import cifar_stem
from augshift.distributed import Dist
from augshift.errors import UsageError

CIFAR = Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "the usual CIFAR-10 values")


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    layers = (nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return nn.Sequential(OrderedDict([*((str(i), layer) for i, layer in enumerate(layers)), ("fc", nn.Linear(8, 4))]))


def data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g), torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("bad, fragment", [
    (dict(epochs=0), "epochs must be >= 1"), (dict(batch_size=0), "batch_size"), (dict(lr=0.0), "lr must be > 0"),
    (dict(optimizer="lamb"), "supported: sgd, adam"), (dict(precision="fp16"), "supported: fp32, bf16"),
    (dict(shift={"weight": 1.0}), "AugShiftConfig"), (dict(augshift=True, shift=None), "needs the shifts"),
    (dict(shift=AugShiftConfig(weight=3.0)), "weight act only with augshift=True"),
])
def test_recipe_refuses_bad_values(bad, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment):
        TrainConfig(**bad)


def test_fit_equals_a_hand_written_loop_on_the_same_batches():
    images, labels = data()
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=3, shift=AugShiftConfig(max_shift=2))
    model = tiny_net()
    batches = TensorBatches(images, labels, batch_size=16, seed=3, normalization=CIFAR)
    history = fit(Trainer(model, config, steps_per_epoch=batches.steps), batches.source(), progress=False)

    reference = tiny_net()  # the same loop written out: SGD nesterov + one-cycle, shifts re-seeded per epoch
    shifts = torch.Generator()
    net = nn.Sequential(RandomShift(2, generator=shifts), reference)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=2 * batches.steps,
                                                   pct_start=0.15)
    means = []
    for epoch in range(2):
        shifts.manual_seed(epoch_seed(3, epoch, 0))
        order = torch.randperm(40, generator=torch.Generator().manual_seed(epoch_seed(3, epoch, -1)))
        losses = []
        for start in range(0, 40, 16):
            index = order[start:start + 16]
            x = (images[index].float() / 255 - torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)) / \
                torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
            loss = F.cross_entropy(net(x), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        means.append(sum(losses) / len(losses))
    assert [row["loss"] for row in history] == pytest.approx(means, rel=1e-5)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert [row["steps"] for row in history] == [3, 3]


def test_fast_path_numerics_on_cpu_follow_fp32():
    images, labels = data()
    losses, layouts = {}, {}
    for name, numerics in {"fp32": {}, "fast": dict(precision="bf16", channels_last=True)}.items():
        config = TrainConfig(epochs=1, batch_size=40, lr=0.01, seed=0, shift=None, **numerics)
        model = tiny_net()
        trainer = Trainer(model, config, steps_per_epoch=1)
        batches = TensorBatches(images, labels, batch_size=40, seed=0, normalization=CIFAR)
        losses[name] = float(trainer.step(*next(iter(batches(0))))[0])
        layouts[name] = model[0].weight.is_contiguous(memory_format=torch.channels_last), model[0].weight.dtype
    assert losses["fast"] == pytest.approx(losses["fp32"], rel=2e-2)
    assert layouts["fast"] == (True, torch.float32)  # channels-last weights, bf16 only inside autocast


def test_flips_mirror_about_half_of_each_batch_and_replay_per_epoch():
    images, labels = data(400)
    flips = TensorBatches(images, labels, batch_size=400, seed=0, hflip=True, normalization=CIFAR)
    plain = TensorBatches(images, labels, batch_size=400, seed=0, normalization=CIFAR)
    (a, _), (b, _), (a2, _) = next(iter(flips(0))), next(iter(plain(0))), next(iter(flips(0)))
    mirrored = (a == b.flip(-1)).flatten(1).all(1) & ~(a == b).flatten(1).all(1)
    assert 120 < int(mirrored.sum()) < 280 and torch.equal(a, a2)
    assert ((a == b).flatten(1).all(1) | mirrored).all()


def test_bn_batches_reestimate_statistics_after_training():
    images, labels = data()
    config = TrainConfig(epochs=1, batch_size=8, lr=0.05, seed=0, shift=None, bn_batches=2)
    model = tiny_net()
    batches = TensorBatches(images, labels, batch_size=8, seed=0, normalization=CIFAR)
    fit(Trainer(model, config, steps_per_epoch=batches.steps), batches.source(), progress=False)
    first = torch.cat([x for x, _ in list(batches(config.epochs))[:2]])
    with torch.no_grad():
        expected = model[0](first).mean(dim=(0, 2, 3))
    torch.testing.assert_close(model[1].running_mean, expected, rtol=1e-4, atol=1e-5)


def test_batch_source_with_segmentation_targets_and_dict_outputs():
    class Segmenter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 5, 1)

        def forward(self, x):
            return {"out": self.conv(x)}

    x, masks = torch.randn(4, 3, 6, 6), torch.randint(0, 5, (4, 6, 6))
    config = TrainConfig(epochs=30, batch_size=4, optimizer="adam", lr=0.05, schedule="constant", shift=None)
    history = fit(Trainer(Segmenter(), config, steps_per_epoch=1), BatchSource(1, lambda epoch: [(x, masks)]),
                  progress=False)
    assert history[-1]["loss"] < history[0]["loss"]


def test_create_model_cifar_stem_keeps_padding_mode_and_torchvision_names_work():
    model = create_model("resnet18", 10)
    model.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False, padding_mode="circular")
    cifar_stem(model)
    assert model.conv1.padding_mode == "circular" and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    vision = create_model("torchvision/resnet18", 7)
    assert vision.fc.out_features == 7
    with pytest.raises(ValueError, match="use stem='standard'"):
        create_model("torchvision/vgg11", 3, stem="cifar")


def test_a_diverging_run_stops_with_the_epoch_instead_of_training_on():
    images, labels = data()
    config = TrainConfig(epochs=3, batch_size=40, lr=1e30, seed=0, shift=None, schedule="constant")
    model = tiny_net()
    with pytest.raises(FloatingPointError, match="non-finite in epoch"):
        fit(Trainer(model, config, steps_per_epoch=1),
            TensorBatches(images, labels, batch_size=40, seed=0, normalization=CIFAR).source(), progress=False)


@pytest.mark.parametrize("augshift", [False, True], ids=["plain", "augshift"])
def test_compiled_step_gives_the_eager_loss_and_gradients(augshift):
    """The captured step (torch.compile of forward and backward, shifts drawn outside it) against the eager step on
    the same batch and shifts: losses within 1e-5 relative, gradients within 1e-4 (float32 kernels may sum in
    another order)."""
    images, labels = data(16)
    x = (images.float() / 255 - 0.5) / 0.25
    config = TrainConfig(epochs=1, batch_size=16, seed=0, shift=AugShiftConfig(max_shift=2), augshift=augshift)
    eager, compiled = Trainer(tiny_net(), config, steps_per_epoch=1), Trainer(tiny_net(), config.replace(compile=True),
                                                                               steps_per_epoch=1)
    results = []
    for trainer in (eager, compiled):
        shifts = trainer.draw(16, x.device)  # drawn from the same seed: the same shifts for both
        loss, parts = trainer.compute(x, labels, shifts)
        loss.backward()
        results.append((parts, [p.grad.clone() for p in trainer.model.parameters()]))
    (eager_parts, eager_grads), (compiled_parts, compiled_grads) = results
    assert len(eager_parts) == (3 if augshift else 1)
    torch.testing.assert_close(compiled_parts, eager_parts, rtol=1e-5, atol=1e-6)
    for a, b in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert compiled.compute is not compiled.losses and eager.compute == eager.losses


def test_a_compiled_run_resumes_exactly_and_drops_the_partial_batch(tmp_path):
    images, labels = data(40)
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=2, shift=AugShiftConfig(max_shift=2), augshift=True,
                         compile=True)

    class Interrupted(Exception):
        pass

    def stop_in_epoch_two(epoch: int, history: list) -> dict:
        if epoch == 2:
            raise Interrupted  # as if the process died during epoch 2: epoch 1's checkpoint is on disk
        return {}

    def run(folder, after_epoch=None) -> tuple[list, dict]:
        batches = TensorBatches(images, labels, batch_size=16, seed=2, normalization=CIFAR, drop_last=True)
        model = tiny_net()
        history = fit(Trainer(model, config, steps_per_epoch=batches.steps), batches.source(),
                      checkpoint=folder / "c.pt", progress=False, after_epoch=after_epoch)
        return history, model.state_dict()

    straight, weights = run(tmp_path / "a")
    with pytest.raises(Interrupted):
        run(tmp_path / "b", stop_in_epoch_two)
    resumed, resumed_weights = run(tmp_path / "b")
    assert [row["steps"] for row in straight] == [2, 2]  # 40 images, batches of 16: the partial batch of 8 dropped
    few = TensorBatches(images[:10], labels[:10], batch_size=16, seed=2, normalization=CIFAR, drop_last=True)
    assert few.steps == 1 and [len(y) for _, y in few(0)] == [10]  # fewer images than a batch: that one batch
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed] == \
        [{k: v for k, v in row.items() if k != "seconds"} for row in straight]
    for name, value in weights.items():
        assert torch.equal(value, resumed_weights[name]), name


@pytest.mark.parametrize("arch", ["resnetblur18", "aps_resnet18"])
def test_the_captured_step_is_one_graph_for_blurpool_and_aps_with_augshift(arch):
    """No graph break: the whole step (two shifted views, model, loss) is one graph, as CUDA graphs need."""
    import torch._dynamo

    config = TrainConfig(epochs=1, shift=AugShiftConfig(), augshift=True)
    trainer = Trainer(create_model(arch, 10, stem="cifar"), config, steps_per_epoch=1)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    explained = torch._dynamo.explain(trainer.losses)(x, y, trainer.draw(4, x.device))
    torch._dynamo.reset()
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


def test_the_engine_shifts_only_when_asked_and_never_images_without_their_masks():
    """A TrainConfig shifts nothing by default; with shifts, (N, H, W) mask targets are refused, since the shifts
    would move the images and not the masks."""
    assert TrainConfig().shift is None
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1))  # a segmenter: (N, 2, H, W) logits
    images, masks = torch.randn(2, 3, 8, 8), torch.randint(0, 2, (2, 8, 8))
    plain = Trainer(model, TrainConfig(epochs=1, batch_size=2), steps_per_epoch=1)
    assert plain.step(images, masks).isfinite().all()
    shifted = Trainer(model, TrainConfig(epochs=1, batch_size=2, shift=AugShiftConfig(max_shift=2)), steps_per_epoch=1)
    with pytest.raises(UsageError, match="are masks, and shifts move the images only"):
        shifted.step(images, masks)


def test_a_batch_size_the_processes_cannot_share_is_a_user_error():
    images = torch.randint(0, 256, (8, 3, 4, 4), dtype=torch.uint8)
    with pytest.raises(UsageError, match="pass a multiple of 2"):
        TensorBatches(images, torch.zeros(8, dtype=torch.long), batch_size=3, seed=0, place=Dist(rank=0, world=2),
                      normalization=Normalization.of_images(images, source="the images"))


def _fit_with_batchnorm_reestimated(rank: int, world: int, port: int, queue) -> None:
    from helpers import init_gloo

    init_gloo(rank, world, port)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(32) % 3
    place = Dist(rank=rank, world=world)
    batches = TensorBatches(images, labels, batch_size=8, seed=0, place=place,
                            normalization=Normalization.of_images(images, source="the test images"))
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=8, bn_batches=2), steps_per_epoch=batches.steps)
    fit(trainer, batches.source(), place=place, progress=False)
    queue.put((rank, {name: value.tolist() for name, value in model.state_dict().items() if "running" in name}))


def test_batchnorm_reestimated_on_each_process_ends_equal_on_every_process():
    """Each process re-estimates the statistics on its own shard; the model every process ends with is the same."""
    import torch.multiprocessing as mp
    from helpers import free_port

    queue = mp.get_context("spawn").Queue()
    mp.spawn(_fit_with_batchnorm_reestimated, args=(2, free_port(), queue), nprocs=2, join=True)
    buffers = dict(queue.get(timeout=10) for _ in range(2))
    assert buffers[0].keys() == {"1.running_mean", "1.running_var"}
    assert buffers[0] == buffers[1]


def test_the_fused_optimizer_is_asked_for_only_where_the_installed_torch_has_it():
    from augshift.engine.config import fused_option

    class SGDWithoutFused(torch.optim.Optimizer):  # torch.optim.SGD as releases before its fused kernel define it
        def __init__(self, params, lr=0.1, momentum=0.0, weight_decay=0.0, nesterov=False, *, foreach=None):
            super().__init__(params, dict(lr=lr))

    assert fused_option(torch.optim.SGD, cuda=True) == {"fused": True}
    assert fused_option(SGDWithoutFused, cuda=True) == {}
    assert fused_option(torch.optim.SGD, cuda=False) == {}
