"""Throughput benchmark: training images/s of the engine's eager fast path and its captured (compiled) step against
the loop the engine replaced, alone and with several runs sharing one device, and the projected wall time of the
whole `paper` preset and of its CIFAR-10 rows for one seed.

    python benchmarks/throughput.py                                      # CPU: eager vs compiled, engine vs bare loop
    python benchmarks/throughput.py --device cuda --concurrency 2,4,8    # GPU: old, fast, compiled, N runs at once

Per model (resnet18, resnetblur18, and both with AugShift; CIFAR stem, 32 px, global batch 128 as in the
`paper` preset; random uint8 images, since the content does not change the speed):

* `old`: the loop before the engine, kept in this script as the reference: fp32, contiguous tensors, the
  normalisation constants copied to the device every batch and the loss read back (`float(loss)`) after
  every step, unfused optimizer.
* `fast`: the engine (`TensorBatches` + `Trainer.step` as `fit` runs them), eager: data on the device, loss
  parts summed on the device and read once; on CUDA bf16 autocast, channels-last and the fused optimizer.
* `compiled`: the same with the captured step (`TrainConfig.compile`: `torch.compile` of forward and backward,
  CUDA graphs on CUDA, the shifts drawn outside the graph; batches of one shape). Compilation happens in the warm-up
  and is reported on its own (`compile s`).
* `compiled xN`: N processes each training its own model with the captured step on the same device at once
  (per-run share of the wall time).
* on CPU, `bare`: a plain PyTorch loop on the same batches (shift, forward, CE, backward, step), against
  which the engine's overhead is measured (fp32, the CPU default).

Achieved TFLOP/s counts the FLOPs of one training step (`torch.utils.flop_counter`: forward and backward),
and the fraction of the chip's dense bf16 peak is printed for GPUs it knows. The paper preset's projected
wall time is 6 runs per row of the preset (3 seeds x CIFAR-10 and CIFAR-100) x 200 epochs x 50,000 images, each row
at the measured throughput of its model (the `:mse@W` rows at `resnet18+augshift`'s), training only (evaluation
adds about 1 %: ~0.2 M test forwards per run against 10 M training images, forward and backward); the CIFAR-10 rows
for one seed are a sixth of it. Writes `results.json`, `results.md` and `throughput.png`.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from paths import RESULTS

from augshift.arguments import Parser
from augshift.errors import run_command
from augshift import AugShift, AugShiftConfig, RandomShift
from augshift.data import Normalization
from augshift.data.stats import normalize
from augshift.engine import TensorBatches, TrainConfig, Trainer
from augshift.models import create_model
from augshift.reporting.plots import pyplot, save_figure
from augshift.reporting.provenance import command_line, machine
from augshift.reporting.results import write_results
from sweep import parse_model

MODELS = ("resnet18", "resnetblur18", "resnet18+augshift", "resnetblur18+augshift", "aps_resnet18",
          "aps_resnet18+augshift")
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM
PATHS = ("old", "fast", "compiled", "bare")  # the timed paths (bare: CPU only); fast is the reference
RUN_IMAGES = 200 * 50_000  # one run of the paper preset: 200 epochs of 50k training images
PAPER_RUNS = 6  # per row of the paper preset: 3 seeds x 2 datasets
CIFAR = Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "CIFAR-10's statistics")


def peak_tflops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def setup(model_name: str, *, device: str, compiled: bool, batch: int, pool: int, seed: int = 0):
    """`(trainer, batches)`: the engine on `pool` random images, the CUDA fast path on CUDA, with the captured step
    when `compiled`."""
    arch, augshift = parse_model(model_name)
    cuda = device.startswith("cuda")
    method = dict(shift=augshift, augshift=True) if augshift is not None else dict(shift=AugShiftConfig())
    config = TrainConfig(epochs=1000, batch_size=batch, lr=0.1, seed=seed, **method, compile=compiled,
                         precision="bf16" if cuda else "fp32", channels_last=cuda)
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (pool, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    labels = torch.randint(0, 10, (pool,), generator=g).to(device)
    torch.manual_seed(seed)
    model = create_model(arch, 10, stem="cifar").to(device)
    batches = TensorBatches(images, labels, batch_size=batch, seed=seed, normalization=CIFAR, drop_last=compiled)
    trainer = Trainer(model, config, steps_per_epoch=batches.steps, generator=torch.Generator(device=device))
    return trainer, batches


def endless(batches: TensorBatches):
    epoch = 0
    while True:
        yield from batches(epoch)
        epoch += 1


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def time_engine(trainer: Trainer, batches: TensorBatches, *, steps: int, warmup: int, device: str,
                barrier=None) -> float:
    """Seconds for `steps` engine steps (loss parts summed on the device, read once at the end); with a
    `barrier`, the timing starts when every process sharing it has warmed up (and compiled)."""
    stream = endless(batches)
    sums = torch.zeros(len(trainer.parts), device=device)
    for _ in range(warmup):
        sums += trainer.step(*next(stream))
    sync(device)
    if barrier is not None:
        barrier.wait()
    began = time.perf_counter()
    for _ in range(steps):
        sums += trainer.step(*next(stream))
    sums.tolist()
    return time.perf_counter() - began


def time_old(model_name: str, *, device: str, batch: int, pool: int, steps: int, warmup: int) -> float:
    """Seconds for `steps` steps of the loop before the engine (see the module docstring)."""
    arch, augshift = parse_model(model_name)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (pool, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    labels = torch.randint(0, 10, (pool,), generator=g).to(device)
    torch.manual_seed(0)
    model = create_model(arch, 10, stem="cifar").to(device)
    shifts = torch.Generator(device=device).manual_seed(0)
    net = AugShift(model, config=augshift, generator=shifts) if augshift else torch.nn.Sequential(RandomShift(4, generator=shifts), model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)

    def step(i: int) -> float:
        index = torch.arange(i * batch, (i + 1) * batch, device=device) % pool
        x = normalize(images[index], CIFAR)
        model.train()
        loss = net(x, labels[index])["loss"] if augshift else F.cross_entropy(net(x), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())  # the per-step read-back of the old loop

    for i in range(warmup):
        step(i)
    sync(device)
    began = time.perf_counter()
    for i in range(steps):
        step(i)
    return time.perf_counter() - began


def time_bare(trainer: Trainer, batches: TensorBatches, *, steps: int, warmup: int) -> float:
    """Seconds for `steps` steps of a plain PyTorch loop on the engine's batches and model (CPU reference)."""
    model = trainer.model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    stream = endless(batches)
    for i in range(warmup + steps):
        if i == warmup:
            began = time.perf_counter()
        x, y = next(stream)
        if trainer.objective is not None:
            loss = trainer.objective(model, trainer.features, x, y)["loss"]
        else:
            loss = F.cross_entropy(model(trainer.shifter(x)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - began


def step_flops(trainer: Trainer, batches: TensorBatches) -> float:
    """FLOPs of one training step (forward + backward), counted by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    x, y = next(iter(batches(0)))
    with FlopCounterMode(display=False) as counter:
        trainer.step(x, y)
    return float(counter.get_total_flops())


def _concurrent_worker(model_name: str, device: str, batch: int, pool: int, steps: int, warmup: int,
                       barrier, seed: int) -> float:
    trainer, batches = setup(model_name, device=device, compiled=True, batch=batch, pool=pool, seed=seed)
    return time_engine(trainer, batches, steps=steps, warmup=warmup, device=device, barrier=barrier)


def time_concurrent(model_name: str, n: int, *, device: str, batch: int, pool: int, steps: int, warmup: int) -> float:
    """Wall seconds for `n` processes to each take `steps` captured steps on `device` at once."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(n)
        with context.Pool(n) as workers:
            jobs = [workers.apply_async(_concurrent_worker, (model_name, device, batch, pool, steps, warmup, barrier, i))
                    for i in range(n)]
            return max(job.get() for job in jobs)


def time_compile(trainer: Trainer, batches: TensorBatches, device: str) -> float:
    """Seconds of the first captured step (compilation, and CUDA graph recording on its next steps)."""
    stream = endless(batches)
    began = time.perf_counter()
    for _ in range(3):  # torch.compile on the first call; reduce-overhead records the CUDA graph after warming up
        trainer.step(*next(stream))
    sync(device)
    return time.perf_counter() - began


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (the paper preset's)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 200 on CUDA, 8 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 30 on CUDA, 2 on CPU)")
    parser.add_argument("--pool", type=int, default=4096, help="random training images kept on the device")
    parser.add_argument("--concurrency", default="2,4,8", help="CUDA: runs sharing the device at once (captured step)")
    parser.add_argument("--paths", default=",".join(PATHS),
                        help=f"which of {', '.join(PATHS)} (CPU) to time (fast is always timed: the reference)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per path, median (default: 1 CUDA, 3 CPU)")
    parser.add_argument("--out", default=None, help="default benchmarks/results/throughput/<cpu|cuda>")
    args = parser.parse_args(argv)
    paths = set(args.paths.split(",")) | {"fast"}
    if paths - set(PATHS):
        parser.error(f"--paths: unknown {', '.join(sorted(paths - set(PATHS)))}; choose from {', '.join(PATHS)}")
    cuda = args.device.startswith("cuda")
    steps = args.steps or (200 if cuda else 8)
    warmup = args.warmup if args.warmup is not None else (30 if cuda else 2)
    args.rounds = args.rounds or (1 if cuda else 3)
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    peak, rows = peak_tflops(args.device), []
    options = dict(device=args.device, batch=args.batch_size, pool=args.pool)
    for name in args.models.split(","):
        trainer, batches = setup(name, compiled=False, **options)
        captured, captured_batches = setup(name, compiled=True, **options) if "compiled" in paths else (None, None)
        flops = step_flops(trainer, batches) / args.batch_size  # per training image
        compile_s = time_compile(captured, captured_batches, args.device) if captured is not None else None
        timers = {"old": lambda w: time_old(name, steps=steps, warmup=w, **options),
                  "fast": lambda w: time_engine(trainer, batches, steps=steps, warmup=w, device=args.device),
                  "compiled": lambda w: time_engine(captured, captured_batches, steps=steps, warmup=w,
                                                    device=args.device)}
        if not cuda:
            timers["bare"] = lambda w: time_bare(trainer, batches, steps=steps, warmup=w)
        timers = {path: timer for path, timer in timers.items() if path in paths}
        samples: dict[str, list[float]] = {path: [] for path in timers}
        for round_ in range(args.rounds):  # round-robin: a change of load hits every path alike
            for path, timer in timers.items():
                samples[path].append(timer(warmup if round_ == 0 else max(1, warmup // 4)))
        seconds = {path: statistics.median(values) for path, values in samples.items()}
        if cuda:
            del trainer, batches, captured, captured_batches, timers
            torch.cuda.empty_cache()
            for n in (int(c) for c in args.concurrency.split(",") if int(c) > 1 and "compiled" in paths):
                seconds[f"compiled x{n}"] = time_concurrent(name, n, steps=steps, warmup=warmup, **options) / n
        for path, s in seconds.items():
            images_per_s = steps * args.batch_size / s
            tflops = flops * images_per_s / 1e12
            rows.append(dict(model=name, path=path, images_per_s=images_per_s, epoch_s=50_000 / images_per_s,
                             tflops=tflops, peak_fraction=tflops / peak if peak else None, flops_per_image=flops,
                             compile_s=compile_s if path.startswith("compiled") else None))
        print(name, {p: f"{steps * args.batch_size / s:.0f} img/s" for p, s in seconds.items()}, flush=True)
        write(rows, args, steps, warmup)  # after every model (printed): a run cut short keeps what it measured
    return 0


def write(rows: list[dict], args: argparse.Namespace, steps: int, warmup: int) -> None:
    """`results.md`, `results.json` and `throughput.png` under `--out`, as one unit."""
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    out = Path(args.out) if args.out else RESULTS / "throughput" / kind
    name = machine(args.device, args.threads)
    text = report(rows, args, name, command_line(), steps, warmup)
    write_results(out, "results", {"command": command_line(), "device": args.device, "machine": name, "steps": steps,
                                   "warmup": warmup, "rows": rows}, text + "\n![throughput](throughput.png)\n",
                  figures={"throughput.png": partial(plot, rows, title=f"Training throughput ({name})")})


def paper_rows() -> list[str]:
    """The rows (models) of the invariance benchmark's `paper` preset."""
    from presets import PRESETS

    return list(PRESETS["paper"]["models"])


def projection(rows: list[dict]) -> dict:
    """Minutes of the whole paper preset per path (`runs` = 6 per row), from each row's model throughput on that
    path (a `:mse@W` row trains at its `+augshift` model's); `None` for a path missing a model."""
    out = {}
    preset = paper_rows()
    for path in dict.fromkeys(row["path"] for row in rows):
        rates = {row["model"]: row["images_per_s"] for row in rows if row["path"] == path}
        needed = [model.split(":")[0] for model in preset]
        if all(model in rates for model in needed):
            minutes = sum(RUN_IMAGES / rates[model] for model in needed) / 60
            out[path] = {"paper": PAPER_RUNS * minutes, "cifar10_one_seed": minutes}
    return out


def report(rows: list[dict], args, machine_name: str, command: str, steps: int, warmup: int) -> str:
    lines = [f"# Training throughput ({args.device}: {machine_name})", "", f"Command: `{command}`", "",
             f"{steps} timed steps after {warmup} warm-up steps per configuration (median of {args.rounds} round(s), "
             f"paths timed round-robin); global batch {args.batch_size}, "
             "32 px, CIFAR stem. `old`: the loop before the engine; `fast`: the engine, eager (bf16 + channels-last + "
             "fused optimizer on CUDA, fp32 on CPU); `compiled`: the same with the captured step (torch.compile of "
             "forward and backward, CUDA graphs on CUDA; compile s: its first steps); `compiled xN`: N runs at once "
             "on the device, per-run share of the wall time; `bare`: a plain PyTorch loop (CPU).", "",
             "| model | path | images/s | epoch s (50k) | TFLOP/s | of bf16 peak | speed-up vs old | vs fast | compile s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        old, fast = (next((r for r in rows if r["model"] == row["model"] and r["path"] == p), None)
                     for p in ("old", "fast"))
        frac = f"{100 * row['peak_fraction']:.1f} %" if row["peak_fraction"] is not None else "-"
        compile_s = f"{row['compile_s']:.0f}" if row.get("compile_s") is not None else "-"
        versus_old = f"{row['images_per_s'] / old['images_per_s']:.2f}x" if old else "-"
        lines.append(f"| {row['model']} | {row['path']} | {row['images_per_s']:.0f} | {row['epoch_s']:.2f} | "
                     f"{row['tflops']:.1f} | {frac} | {versus_old} | {row['images_per_s'] / fast['images_per_s']:.2f}x | "
                     f"{compile_s} |")
    bare = {r["model"]: r for r in rows if r["path"] == "bare"}
    if bare:
        lines += ["", "Engine overhead against the bare loop (time ratio engine / bare, same batches and model):", ""]
        lines += [f"- {m}: {r['images_per_s'] / next(x for x in rows if x['model'] == m and x['path'] == 'fast')['images_per_s']:.3f}"
                  for m, r in bare.items()]
    minutes = projection(rows)
    if minutes:
        rows_of_preset = paper_rows()
        lines += ["", f"Projected wall time, training only, one device, of the `paper` preset ({len(rows_of_preset)} rows x "
                  f"{PAPER_RUNS} runs x 200 epochs of 50k images) and of its CIFAR-10 rows for one seed "
                  f"({len(rows_of_preset)} runs): "
                  + "; ".join(f"{path} {m['paper']:.0f} min / {m['cifar10_one_seed']:.1f} min"
                              for path, m in sorted(minutes.items(), key=lambda kv: -kv[1]["paper"]))]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, *, title: str) -> None:
    """Images/s per model, one bar per path."""
    plt = pyplot()
    models = list(dict.fromkeys(r["model"] for r in rows))
    paths = list(dict.fromkeys(r["path"] for r in rows))
    fig, ax = plt.subplots(figsize=(2.2 * len(models) + 2, 4.2))
    width = 0.8 / len(paths)
    for k, name in enumerate(paths):
        values = [next((r["images_per_s"] for r in rows if r["model"] == m and r["path"] == name), 0.0) for m in models]
        ax.bar([i + (k - (len(paths) - 1) / 2) * width for i in range(len(models))], values, width=width, label=name)
    ax.set_xticks(range(len(models)), models, rotation=15, fontsize=8)
    ax.set(ylabel="training images / s", title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="result files already written are whole"))
