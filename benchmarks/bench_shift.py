"""Speed of ``RandomShift`` against kornia and torchvision random crops, and against a resnet18 training step.

    python benchmarks/bench_shift.py                 # (256, 3, 32, 32) float32 batch, CPU
    python benchmarks/bench_shift.py --device cuda --profile

All timings are medians of ``torch.utils.benchmark`` measurements taken in this one run, on one batch:

* ``augshift.RandomShift(4, mode="zeros")``: one gather for the whole batch (pad-and-crop equivalent);
* ``kornia.augmentation.RandomCrop((32, 32), padding=4)``: batched, per-sample crops;
* ``torchvision.transforms.v2.RandomCrop(32, padding=4)``: one sample at a time (a Python loop);
* one SGD training step of timm ``resnet18`` (10 classes, standard stem) on the same batch.

Writes ``results.json`` and ``results.md`` to ``--out`` (default ``benchmarks/results/bench_shift``).
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from bench_common import RESULTS, command_line

from augshift import RandomShift
from augshift.io import write_json_atomic, write_text_atomic


def median_seconds(fn, *, device: torch.device, min_run_time: float) -> float:
    """Median seconds per call of ``fn()`` (CUDA synchronised by the benchmark timer)."""
    fn()  # warm-up
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def candidates(batch: torch.Tensor, max_shift: int) -> dict:
    """name -> zero-argument callable shifting/cropping ``batch``."""
    import kornia.augmentation as K
    from torchvision.transforms import v2

    size = tuple(batch.shape[-2:])
    shifter = RandomShift(max_shift, mode="zeros")
    kornia_crop = K.RandomCrop(size, padding=max_shift)
    tv_crop = v2.RandomCrop(size, padding=max_shift)
    return {
        "augshift RandomShift": lambda: shifter(batch),
        "kornia RandomCrop (batched)": lambda: kornia_crop(batch),
        "torchvision RandomCrop (per sample)": lambda: torch.stack([tv_crop(image) for image in batch]),
    }


def training_step(batch: torch.Tensor) -> callable:
    """One SGD step of timm resnet18 (10 classes) on ``batch``."""
    import timm

    model = timm.create_model("resnet18", num_classes=10).to(batch.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.randint(0, 10, (batch.shape[0],), device=batch.device)

    def step() -> None:
        loss = F.cross_entropy(model(batch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def profile_table(fn, rows: int = 12) -> str:
    """Where the time of ``fn()`` goes, by operator (torch profiler, self time)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(20):
            fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs=4, default=(256, 3, 32, 32), metavar=("N", "C", "H", "W"))
    parser.add_argument("--max-shift", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds of measurement per candidate")
    parser.add_argument("--profile", action="store_true", help="print where RandomShift's time goes")
    parser.add_argument("--out", default=str(RESULTS / "bench_shift"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    batch = torch.randn(*args.batch, device=device)
    times = {name: median_seconds(fn, device=device, min_run_time=args.min_run_time)
             for name, fn in candidates(batch, args.max_shift).items()}
    step = median_seconds(training_step(batch), device=device, min_run_time=args.min_run_time)
    ours, kornia_time = times["augshift RandomShift"], times["kornia RandomCrop (batched)"]
    command = command_line()
    lines = [f"# bench_shift: batch {tuple(args.batch)}, {device}, {args.threads} threads\n", f"Command: `{command}`\n",
             f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}\n",
             "| method | median ms | time / RandomShift | % of a resnet18 training step |", "|---|---|---|---|"]
    for name, seconds in times.items():
        lines.append(f"| {name} | {seconds * 1e3:.3f} | {seconds / ours:.2f}x | {100 * seconds / step:.2f}% |")
    lines.append(f"| resnet18 training step (same batch) | {step * 1e3:.1f} | {step / ours:.0f}x | 100% |")
    verdict = (f"\nRandomShift is {kornia_time / ours:.2f}x as fast as kornia's RandomCrop "
               f"({'goal met' if ours <= kornia_time else 'goal NOT met'}: at least as fast) and takes "
               f"{100 * ours / step:.2f}% of a resnet18 step ({'goal met' if ours < 0.02 * step else 'goal NOT met'}: < 2%).\n")
    text = "\n".join(lines) + "\n" + verdict
    if args.profile:
        text += "\nWhere RandomShift's time goes (torch profiler, 20 calls):\n\n```\n" + profile_table(
            candidates(batch, args.max_shift)["augshift RandomShift"]) + "\n```\n"
    print(text)
    out = Path(args.out)
    write_text_atomic(out / "results.md", text)
    write_json_atomic(out / "results.json", {
        "command": command, "batch": list(args.batch), "device": str(device), "threads": args.threads,
        "median_seconds": times, "resnet18_step_seconds": step,
        "ratio_to_randomshift": {name: seconds / ours for name, seconds in times.items()},
        "fraction_of_step": {name: seconds / step for name, seconds in times.items()},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
