import pytest
import timm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from augshift import AugShift, ConsistencyLoss, loss_parts, shift
from augshift.features import logits_and_features
from augshift.errors import UsageError
from helpers import TinyCNN, free_port, init_gloo, pad_and_slice, roll_each


def make_model(num_classes=4):
    torch.manual_seed(0)
    return timm.create_model("resnet18", num_classes=num_classes)


def test_loss_equals_manual_two_view_computation():
    model = make_model()
    aug = AugShift(model, max_shift=3, weight=0.7, distance="mse", generator=torch.Generator().manual_seed(1))
    x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 4, (6,))
    result = aug(x, y)
    pa, pb = result["params"]
    assert not (torch.equal(pa.dx, pb.dx) and torch.equal(pa.dy, pb.dy))  # independent views
    views = torch.cat([shift(x, pa.dx, pa.dy, "zeros"), shift(x, pb.dx, pb.dy, "zeros")])
    logits, pooled = logits_and_features(model, views)
    ce = F.cross_entropy(logits, torch.cat([y, y]))
    expected = ce + 0.7 * F.mse_loss(pooled[:6], pooled[6:])
    torch.testing.assert_close(result["loss"], expected)
    torch.testing.assert_close(result["logits"], logits)
    assert result["output"].shape == (6, 4)
    parts = loss_parts(result)
    assert set(parts) == {"loss", "criterion", "consistency"} and all(isinstance(v, float) for v in parts.values())
    assert parts["loss"] == pytest.approx(parts["criterion"] + 0.7 * parts["consistency"], rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_loss_and_gradients_match_cpu(monkeypatch):
    """Shifts drawn from one CPU generator on both devices: the same loss and gradients (fp32, no TF32)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 4, (6,))
    grads = []
    for device in ("cpu", "cuda"):
        model = make_model().to(device)
        aug = AugShift(model, max_shift=3, generator=torch.Generator().manual_seed(1))
        result = aug(x.to(device), y.to(device))
        result["loss"].backward()
        grads.append((result["loss"].detach().cpu(), model.conv1.weight.grad.cpu(), result["params"][0].dx.cpu()))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-3, atol=1e-5)
    assert torch.equal(grads[1][2], grads[0][2])


def test_gradient_reaches_encoder_through_both_views():
    model = make_model()
    seen = {}

    def keep_views(module, args):
        args[0].retain_grad()
        seen["views"] = args[0]

    model.conv1.register_forward_pre_hook(keep_views)
    # criterion switched off: the gradient comes from the consistency term alone
    aug = AugShift(model, max_shift=2, weight=1.0, criterion=lambda logits, t: logits.sum() * 0)
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    aug(x, torch.randint(0, 4, (4,)))["loss"].backward()
    grad = seen["views"].grad
    assert grad[:4].abs().sum() > 0 and grad[4:].abs().sum() > 0
    assert model.conv1.weight.grad.abs().sum() > 0 and model.layer4[1].bn2.weight.grad.abs().sum() > 0  # last BN: timm zero-inits its scale


class NoBatchStatistics(torch.nn.Module):
    """A GAP classifier without BatchNorm: nothing couples the two views but the consistency term."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("distance", ["mse", "cosine"])
def test_augshift_gradient_is_that_of_ce_on_both_views_plus_the_distance_of_their_pooled_features(distance):
    """AugShift's loss and its gradient, against autograd of CE(both views) + w * d(pooled_A, pooled_B) written by
    hand (circular views: torch.roll); a consistency term cut from either view's graph gives another gradient."""
    torch.manual_seed(0)
    model, weight = NoBatchStatistics(), 0.7
    x, y = torch.randn(5, 3, 12, 12), torch.randint(0, 4, (5,))
    generator = torch.Generator().manual_seed(3)
    aug = AugShift(model, max_shift=3, mode="circular", weight=weight, distance=distance, generator=generator)
    state = generator.get_state()
    params_a, params_b = aug.objective.sample(5, torch.device("cpu"))
    generator.set_state(state)  # AugShift draws these same shifts
    result = aug(x, y)
    ours = torch.autograd.grad(result["loss"], model.conv.weight)[0]

    def reference(detach: str = "") -> torch.Tensor:
        views = [torch.stack([torch.roll(image, (int(dy), int(dx)), (-2, -1)) for image, dx, dy in zip(x, p.dx, p.dy)])
                 for p in (params_a, params_b)]
        pooled = [torch.relu(model.conv(view)).mean((2, 3)) for view in views]
        logits = model.fc(torch.cat(pooled))
        a, b = (p.detach() if name == detach else p for p, name in zip(pooled, "ab"))
        gap = F.mse_loss(a, b) if distance == "mse" else (1 - F.cosine_similarity(a, b, dim=1)).mean()
        return F.cross_entropy(logits, torch.cat([y, y])) + weight * gap

    full = reference()
    torch.testing.assert_close(result["loss"], full)
    torch.testing.assert_close(ours, torch.autograd.grad(full, model.conv.weight)[0])
    for cut in "ab":
        assert not torch.allclose(ours, torch.autograd.grad(reference(detach=cut), model.conv.weight)[0], atol=1e-6)


def hand_loss(pooled_of, classifier, x, targets, params, weight, distance="cosine"):
    """``(criterion, consistency, loss)`` by hand: CE (hard or soft targets) on both zero-border views
    (pad-and-slice) and the distance (default: the library's, cosine) of their pooled features."""
    views = torch.cat([pad_and_slice(x, p.dx, p.dy) for p in params])
    pooled = pooled_of(views)
    logits = classifier(pooled)
    both = torch.cat([targets, targets])
    ce = -(both * F.log_softmax(logits, 1)).sum(1).mean() if both.is_floating_point() else F.cross_entropy(logits, both)
    a, b = pooled.split(len(x))
    gap = ((a - b) ** 2).mean() if distance == "mse" else (1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean()
    return ce, gap, ce + weight * gap


def test_soft_targets_give_the_soft_cross_entropy_on_both_views_plus_the_consistency():
    model = TinyCNN()
    aug = AugShift(model, max_shift=2, weight=0.3, distance="mse", generator=torch.Generator().manual_seed(2))
    x, soft = torch.randn(3, 3, 12, 12), torch.softmax(torch.randn(3, 4), dim=1)
    result = aug(x, soft)
    ce, consistency, loss = hand_loss(model.pooled, model.fc, x, soft, result["params"], 0.3, "mse")
    torch.testing.assert_close(result["loss"], loss)
    torch.testing.assert_close(result["criterion"], ce)
    torch.testing.assert_close(result["consistency"], consistency)


def test_state_dict_unchanged():
    model = make_model()
    keys = list(model.state_dict())
    aug = AugShift(model, max_shift=2)
    aug(torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 2]))
    assert [k.removeprefix("model.") for k in aug.state_dict()] == keys
    plain = timm.create_model("resnet18", num_classes=4)
    plain.load_state_dict(aug.model.state_dict())


@pytest.mark.parametrize(
    "images,targets,error,match",
    [
        (torch.randint(0, 255, (2, 3, 16, 16), dtype=torch.uint8), torch.tensor([0, 1]), TypeError,
         "^images must be a floating tensor"),
        (torch.randn(3, 16, 16), torch.tensor([0, 1, 2]), ValueError,
         "^images must have shape \\(N, C, H, W\\), got 3-D"),
        (torch.randn(0, 3, 16, 16), torch.tensor([], dtype=torch.long), ValueError, "^images is an empty batch"),
        (torch.randn(2, 3, 16, 16), torch.tensor([0, 1, 2]), ValueError, "shape \\(2,\\)"),
        (torch.randn(2, 3, 16, 16), torch.tensor([0.0, 1.0]), ValueError, "class indices"),
        (torch.randn(2, 3, 16, 16), [0, 1], TypeError, "^targets must be a tensor, got list$"),
        (torch.randn(2, 3, 4, 4), torch.tensor([0, 1]), ValueError,
         r"^max_shift=\(4, 4\) must be smaller than the image \(W=4, H=4\)"),
        (torch.randn(2, 3, 16, 4), torch.tensor([0, 1]), ValueError,  # each side against its own shift
         r"^max_shift=\(4, 4\) must be smaller than the image \(W=4, H=16\)"),
    ],
)
def test_bad_input(images, targets, error, match):
    aug = AugShift(TinyCNN(), max_shift=4)
    with pytest.raises(error, match=match):
        aug(images, targets)


def test_consistency_loss_distances_against_formulas():
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    torch.testing.assert_close(ConsistencyLoss("mse")(a, b), ((a - b) ** 2).mean())
    torch.testing.assert_close(ConsistencyLoss("l1")(a, b), (a - b).abs().mean())
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    torch.testing.assert_close(ConsistencyLoss("cosine")(a, b), (1 - cos).mean())
    na, nb = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    torch.testing.assert_close(ConsistencyLoss("mse", normalize=True)(a, b), ((na - nb) ** 2).mean())
    # a normalised distance cannot be lowered by shrinking the features; raw MSE can
    assert ConsistencyLoss("mse")(a * 0.1, b * 0.1) < ConsistencyLoss("mse")(a, b)
    torch.testing.assert_close(ConsistencyLoss("mse", normalize=True)(a * 0.1, b * 0.1), ConsistencyLoss("mse", normalize=True)(a, b))
    with pytest.raises(ValueError, match="supported: mse, l1, cosine"):
        ConsistencyLoss("kl")
    with pytest.raises(ValueError, match="\\(N, D\\)"):
        ConsistencyLoss()(a, b[:3])
    for first, second in ((a, b.long()), (a.long(), b)):  # either one not floating is refused, naming both dtypes
        with pytest.raises(TypeError, match=f"floating tensors, got {first.dtype} and {second.dtype}"):
            ConsistencyLoss()(first, second)


def _small_pooled_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))


def test_a_frozen_backbone_is_refused_at_the_first_training_step_unless_the_weight_is_zero():
    model = _small_pooled_model()
    for parameter in model[0].parameters():  # cv_example.py's linear probe: only the classifier trains
        parameter.requires_grad = False
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    with pytest.raises(UsageError, match=r"^the consistency term reaches no trainable parameter: every layer before "
                                         r"the classifier is frozen \(requires_grad=False\), so weight has no "
                                         r"effect; unfreeze the backbone \(a linear probe cannot learn shift "
                                         r"consistency\), or train with weight=0 for cross-entropy on the two views "
                                         r"alone$"):
        AugShift(model, max_shift=1, classifier="3")(x, y)
    result = AugShift(model, max_shift=1, classifier="3", weight=0.0)(x, y)  # two-view CE only
    torch.testing.assert_close(result["loss"], hand_loss(model[:3], model[3], x, y, result["params"], 0.0)[2])
    assert result["loss"].requires_grad
    with torch.no_grad():  # an evaluation forward trains nothing: nothing to refuse
        result = AugShift(model, max_shift=1, classifier="3")(x, y)
        torch.testing.assert_close(result["loss"], hand_loss(model[:3], model[3], x, y, result["params"], 1.0)[2])
    model[0].weight.requires_grad = True  # a backbone that trains at all is fine
    result = AugShift(model, max_shift=1, classifier="3")(x, y)
    torch.testing.assert_close(result["loss"], hand_loss(model[:3], model[3], x, y, result["params"], 1.0)[2])


def test_a_named_classifier_fed_by_a_flattened_map_is_refused():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 2))
    with pytest.raises(UsageError, match=r"the flattened 4 x 8 x 8 map of its module '1'"):
        AugShift(model, max_shift=1, classifier="2")(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    pooled = _small_pooled_model()  # pool -> flatten -> linear: the flatten of a 1 x 1 map is a pooled feature
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    result = AugShift(pooled, max_shift=1, classifier="3", generator=torch.Generator().manual_seed(0))(x, y)
    _, consistency, loss = hand_loss(pooled[:3], pooled[3], x, y, result["params"], 1.0)
    assert consistency > 0  # the drawn views differ: the consistency term is not trivially zero
    torch.testing.assert_close(result["consistency"], consistency)
    torch.testing.assert_close(result["loss"], loss)


# ---------------------------------------------------------------------------------------------- two processes
# One gloo group of two processes serves every multi-process test of this file (one spawn, one rendezvous).

def _ddp_training(rank, world):
    """Three DDP steps, each rank its own batch and shifts: the consistency AugShift reports at each step, and the
    one computed by hand from a copy of the model (train-mode BatchNorm over both views, pad-and-slice views)."""
    import copy

    from torch.nn.parallel import DistributedDataParallel as DDP

    model = make_model()  # same seed on both ranks
    wrapped = DDP(AugShift(model, max_shift=2, distance="mse", generator=torch.Generator().manual_seed(rank)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(100 + rank)  # each rank its own batch
    reported, by_hand = [], []
    for _ in range(3):
        x, y = torch.randn(4, 3, 16, 16, generator=data), torch.randint(0, 4, (4,), generator=data)
        before = copy.deepcopy(model)
        result = wrapped(x, y)
        views = torch.cat([pad_and_slice(x, p.dx, p.dy) for p in result["params"]])
        with torch.no_grad():
            pooled = before.forward_head(before.forward_features(views), pre_logits=True)
        by_hand.append(F.mse_loss(pooled[:4], pooled[4:]).item())
        optimizer.zero_grad()
        result["loss"].backward()
        optimizer.step()
        reported.append(float(result["consistency"]))
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    return {"identical": torch.equal(gathered[0], gathered[1]), "consistency": reported, "by_hand": by_hand}


def _shift_draws():
    """AugShift without a generator, seeded like accelerate's set_seed (every process alike), twice."""
    draws = []
    for _ in range(2):  # the same seed twice: the same shifts again
        torch.manual_seed(5)
        augshift = AugShift(_small_pooled_model(), max_shift=3, classifier="3")
        params = augshift(torch.randn(6, 3, 8, 8), torch.zeros(6, dtype=torch.long))["params"]
        draws.append(torch.stack([params[0].dx, params[0].dy, params[1].dx, params[1].dy]).tolist())
    return draws


def _two_processes(rank, world, port, queue):
    init_gloo(rank, world, port)
    torch.set_num_threads(1)
    queue.put((rank, {"ddp": _ddp_training(rank, world), "draws": _shift_draws()}))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes() -> dict:
    """``{rank: {"ddp": ..., "draws": ...}}`` from one spawn of two gloo processes."""
    queue = mp.get_context("spawn").Queue()
    mp.spawn(_two_processes, args=(2, free_port(), queue), nprocs=2, join=True)
    return dict(queue.get(timeout=10) for _ in range(2))


def test_ddp_wrapped_augshift_keeps_ranks_identical(two_processes):
    for rank in (0, 1):
        ddp = two_processes[rank]["ddp"]
        assert ddp["identical"]
        # features were captured inside the DDP forward: the consistency is that of the two views' pooled features
        assert ddp["consistency"] == pytest.approx(ddp["by_hand"], rel=1e-4)


def test_without_a_generator_processes_seeded_alike_draw_their_own_shifts_reproducibly(two_processes):
    draws = {rank: two_processes[rank]["draws"] for rank in (0, 1)}
    assert draws[0][0] == draws[0][1] and draws[1][0] == draws[1][1]  # the seed replays
    assert draws[0][0] != draws[1][0]  # each process its own shifts


def test_every_option_reaches_the_objective():
    model, criterion = _small_pooled_model(), torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    net = AugShift(model, max_shift=(3, 1), mode="circular", weight=2.5, distance="mse", normalize=True,
                   classifier="3", criterion=criterion)
    config = net.objective.config
    assert (config.max_shift, config.mode, config.weight, config.distance, config.normalize) == (
        (3, 1), "circular", 2.5, "mse", True)
    shifter = net.objective.shifter
    assert (shifter.max_dx, shifter.max_dy, shifter.mode) == (3, 1, "circular")
    assert net.objective.criterion is criterion and net.objective.weight == 2.5
    x, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 1])
    result = net(x, y)
    views = torch.cat([roll_each(x, p.dx, p.dy) for p in result["params"]])  # circular: torch.roll per image
    pooled = model[:3](views)
    a, b = F.normalize(pooled[:3], dim=1), F.normalize(pooled[3:], dim=1)  # normalize=True, then mse
    by_hand = criterion(model[3](pooled), torch.cat([y, y])) + 2.5 * ((a - b) ** 2).mean()
    torch.testing.assert_close(result["loss"], by_hand)
    same = AugShift(model, config=config, classifier="3")
    assert same.objective.config == config and isinstance(same.objective.criterion, torch.nn.CrossEntropyLoss)


def test_logits_of_another_shape_are_refused_naming_it():
    class Unflattened(torch.nn.Module):  # logits (N, K, 1): a classifier left as a 1 x 1 convolution, say
        def __init__(self) -> None:
            super().__init__()
            self.body, self.fc = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.body(x).mean(dim=(2, 3))).unsqueeze(-1)

    with pytest.raises(ValueError, match=r"^the model must return logits of shape \(N, K\), got \(4, 2, 1\)$"):
        AugShift(Unflattened(), max_shift=1)(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))


def test_compiling_is_true_only_while_torch_compile_traces():
    from augshift.augshift import compiling

    traced = torch.compile(lambda x: x + int(compiling()), backend="eager", fullgraph=True)
    assert not compiling() and traced(torch.zeros(1)).item() == 1.0


def test_a_loss_that_is_not_finite_stops_with_what_to_check():
    parts = {"loss": torch.tensor(float("inf")), "criterion": torch.tensor(1.0), "consistency": torch.tensor(0.0)}
    with pytest.raises(FloatingPointError, match=r"^the AugShift loss is not finite \(\{'loss': inf, 'criterion': "
                                                 r"1.0, 'consistency': 0.0\}\): the images or the model's weights "
                                                 r"hold NaN or inf \(a diverged run\? lower the learning rate; check "
                                                 r"the data\)$"):
        loss_parts(parts)
