"""Cost benchmark: training-step time, peak training memory and inference time, as ratios to plain resnet18.

    python benchmarks/cost.py                         # CPU: 32 px (batch 128) and 224 px (batch 32)
    python benchmarks/cost.py --device cuda --batch-32 128 --batch-224 128 --repeats 20 --warmup 3

Per model (resnet18, resnetblur18, and both with AugShift) and image size, in one run, on the same batch:
one SGD training step (AugShift: two shifted views of the batch, one forward of 2N images, CE on both and
the consistency loss), its peak memory (CUDA: `torch.cuda.max_memory_allocated`; CPU: the rise of the
process's peak resident memory during the step, read from `/proc/self/status` after resetting it), and
an inference forward. AugShift is also timed at half the batch (the same number of images through the
network per step: equal compute), and plain resnet18 at double batch is the reference for the 2N images
an AugShift step runs (on CPUs a step's time grows faster than its batch). AugShift's inference is the plain network's by construction (`AugShift`
wraps the unmodified model, which is what is evaluated and saved), so its inference ratio is that of its base.
Times are taken round-robin over the configurations (a change of load hits all alike); each CPU memory
peak is measured in a fresh process (CUDA: the allocator's peak, reset before the step). Writes `results.json`,
`results.md` and `cost.png` to `--out`.
"""
from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from functools import partial
from pathlib import Path

from paths import RESULTS

from augshift.arguments import Parser
from augshift.errors import run_command
from augshift.models import create_model
from augshift.reporting.plots import pyplot, save_figure
from augshift.progress import progress_bar
from augshift.reporting.provenance import command_line
from augshift.reporting.results import write_results
from sweep import parse_model

MODELS = ("resnet18", "resnetblur18", "aps_resnet18", "resnet18+augshift", "resnetblur18+augshift",
          "aps_resnet18+augshift")


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def build(model_name: str, size: int, batch: int, *, device: str, stem: str):
    """`(step, infer, sync)` closures: one SGD step (AugShift: two views, one forward of 2N images) and one
    inference forward of the plain network, on a fixed random batch."""
    import torch
    import torch.nn.functional as F

    from augshift import AugShift

    torch.manual_seed(0)
    arch, augshift = parse_model(model_name)
    dev = torch.device(device)
    model = create_model(arch, 10, stem=stem).to(dev)
    net = AugShift(model, config=augshift) if augshift else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def step() -> None:
        model.train()
        loss = net(x, y)["loss"] if augshift else F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer() -> None:
        model.eval()
        model(x)

    return step, infer, sync


def peak_memory(model_name: str, size: int, batch: int, *, device: str, stem: str, threads: int) -> float:
    """MiB the first training step adds at its peak (activations, gradients, momentum buffers)."""
    import torch

    torch.set_num_threads(threads)
    step, _, sync = build(model_name, size, batch, device=device, stem=stem)
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        sync()
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    before = _rss_kib("VmRSS") if _reset_peak_rss() else _rss_kib("VmHWM")
    step()
    return (_rss_kib("VmHWM") - before) / 1024


def peak_memory_isolated(**kwargs) -> float:
    """`peak_memory` where peaks of different models do not mix: on CUDA in this process (the
    allocator's peak counter is reset per step), on CPU in a fresh spawned process (a process's peak RSS is not)."""
    if kwargs["device"].startswith("cuda"):
        return peak_memory(**kwargs)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(peak_memory, kwds=kwargs)


def interleaved_times(closures: list, repeats: int, *, warmup: int = 1) -> list[float]:
    """Median seconds of each closure, timed round-robin (one call of each per round, after `warmup`
    calls of each), so a change of machine load hits every configuration alike."""
    samples: list[list[float]] = [[] for _ in closures]
    for _ in range(warmup):
        for fn, sync in closures:
            fn()
    for _ in range(repeats):
        for i, (fn, sync) in enumerate(closures):
            sync()
            began = time.perf_counter()
            fn()
            sync()
            samples[i].append(time.perf_counter() - began)
    return [statistics.median(s) for s in samples]


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stem", default="cifar", choices=("standard", "cifar"), help="stem at 32 px (224 px: standard)")
    parser.add_argument("--batch-32", type=int, default=128)
    parser.add_argument("--batch-224", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (CUDA: cudnn autotuning)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "cost"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # on CUDA each model gets its fastest kernels (warm-up rounds tune them)
    command, rows = command_line(), []
    for size, batch, stem in progress_bar(((32, args.batch_32, args.stem), (224, args.batch_224, "standard")),
                                       desc="cost", leave=True):
        configs = [(model, b) for model in MODELS for b in ((batch, batch // 2) if parse_model(model)[1] else (batch,))]
        configs.append(("resnet18", 2 * batch))  # reference: the 2N images an AugShift step runs, without AugShift
        built = [build(model, size, b, device=args.device, stem=stem) for model, b in configs]
        steps = interleaved_times([(step, sync) for step, _, sync in built], args.repeats, warmup=args.warmup)
        plain = [i for i, (model, b) in enumerate(configs) if not parse_model(model)[1] and b == batch]
        infers = dict(zip(plain, interleaved_times([built[i][1:] for i in plain], args.repeats, warmup=args.warmup)))
        del built
        for i, (model, b) in enumerate(configs):
            memory = peak_memory_isolated(model_name=model, size=size, batch=b, device=args.device, stem=stem,
                                          threads=args.threads)
            rows.append({"model": model, "size": size, "batch": b, "stem": stem, "step_s": steps[i],
                         "peak_step_mib": memory, **({"infer_s": infers[i]} if i in infers else {})})
    table = ratios(rows)
    machine = (f"{torch.cuda.get_device_name(args.device)}, torch {torch.__version__}" if args.device.startswith("cuda")
               else f"{args.threads} threads, torch {torch.__version__}")
    text = (f"# Cost benchmark ({args.device}: {machine})\n\nCommand: `{command}`\n\n"
            f"Ratios to plain resnet18 at the same image size and batch (times: median of {args.repeats} rounds after "
            f"{args.warmup} warm-up round(s), the configurations timed round-robin, fp32; memory: peak rise during the "
            f"first training step, each CPU one in a fresh process). 32 px uses the {args.stem} stem, 224 px the "
            "standard one. AugShift's inference is the plain network's (AugShift wraps the unmodified model), so its inference column is its base model's.\n\n"
            + table + "\n![cost ratios](cost.png)\n")
    write_results(Path(args.out), "results", {"command": command, "device": args.device, "machine": machine,
                                              "rows": rows}, text,
                  figures={"cost.png": partial(plot_ratios, rows, device=args.device, machine=machine)})
    return 0


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row with its display `name` and `step` / `memory` / `inference` ratios to resnet18 at the
    same size and batch (`inference` None for the double-batch reference, which has no inference)."""
    out = []
    for row in rows:
        base = next(r for r in rows if r["model"] == "resnet18" and r["size"] == row["size"])
        arch = parse_model(row["model"])[0]
        infer = next(r for r in rows if r["model"] == arch and r["size"] == row["size"])["infer_s"]
        scale = {row["batch"] < base["batch"]: " (half batch)", row["batch"] > base["batch"]: " (double batch, reference)"}
        out.append({**row, "name": row["model"] + scale.get(True, ""), "infer_s": infer,
                    "step": row["step_s"] / base["step_s"], "memory": row["peak_step_mib"] / base["peak_step_mib"],
                    "inference": infer / base["infer_s"] if row["batch"] <= base["batch"] else None})
    return out


def ratios(rows: list[dict]) -> str:
    """Markdown table of times, memory and their ratios to resnet18 at the same size and batch."""
    lines = ["| px | model | batch | step ms | step / r18 | peak step MiB | memory / r18 | inference ms | inference / r18 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in with_ratios(rows):
        inference = f"{row['infer_s'] * 1e3:.0f} | {row['inference']:.2f}" if row["inference"] is not None else "- | -"
        lines.append(
            f"| {row['size']} | {row['name']} | {row['batch']} | {row['step_s'] * 1e3:.0f} | {row['step']:.2f} | "
            f"{row['peak_step_mib']:.0f} | {row['memory']:.2f} | {inference} |")
    return "\n".join(lines) + "\n"


def plot_ratios(rows: list[dict], path: Path, *, device: str, machine: str) -> None:
    """`cost.png` at `path`: step time, peak memory and inference ratios to resnet18, one panel per image size."""
    plt = pyplot()
    table = with_ratios(rows)
    sizes = sorted({r["size"] for r in table})
    fig, axes = plt.subplots(1, len(sizes), figsize=(7.5 * len(sizes), 4.8), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        block = [r for r in table if r["size"] == size]
        x = list(range(len(block)))
        for k, metric in enumerate(("step", "memory", "inference")):
            values = [r[metric] if r[metric] is not None else 0.0 for r in block]
            ax.bar([i + (k - 1) * 0.27 for i in x], values, width=0.27, label=metric)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(x, [f"{r['name']} [{r['batch']}]" for r in block], rotation=30, ha="right", fontsize=7)
        ax.set(ylabel="ratio to resnet18, same batch", title=f"{size} px")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Cost benchmark ({device}: {machine})")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="result files already written are whole"))
