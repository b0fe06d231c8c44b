"""Cost benchmark: training-step time, peak training memory and inference time, as ratios to plain resnet18.

    python benchmarks/cost.py                         # CPU: 32 px (batch 128) and 224 px (batch 32)
    python benchmarks/cost.py --device cuda --batch-32 256 --batch-224 128

Per model (resnet18, resnetblur18, and both with AugShift) and image size, in one run, on the same batch:
one SGD training step (AugShift: two shifted views of the batch, one forward of 2N images, CE on both and
the consistency loss), its peak memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the rise of the
process's peak resident memory during the step, read from ``/proc/self/status`` after resetting it), and
an inference forward. AugShift is also timed at half the batch (the same number of images through the
network per step: equal compute). AugShift's inference is the plain network's by construction (``AugShift``
wraps the unmodified model, which is what is evaluated and saved), so its inference ratio is that of its base.
Each measurement runs in a fresh process (so memory peaks do not mix). Writes ``results.json`` /
``results.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

from bench_common import RESULTS, command_line, create_model, parse_model

from augshift.io import write_json_atomic, write_text_atomic

MODELS = ("resnet18", "resnetblur18", "resnet18+augshift", "resnetblur18+augshift")


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


def measure(model_name: str, size: int, batch: int, *, device: str, stem: str, repeats: int, threads: int,
            inference: bool) -> dict:
    """Median step seconds, peak step memory (MiB) and median inference seconds of one configuration."""
    import torch
    import torch.nn.functional as F

    from augshift import AugShift

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    arch, augshift = parse_model(model_name)
    dev = torch.device(device)
    model = create_model(arch, 10, stem=stem).to(dev)
    net = AugShift(model) if augshift else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def step() -> None:
        loss = net(x, y)["loss"] if augshift else F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # memory: the first step (activations, gradients and momentum buffers appear)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        step()
        sync()
        peak_mib = (torch.cuda.max_memory_allocated(dev) - before) / 2**20
    else:
        reset = _reset_peak_rss()
        before = _rss_kib("VmRSS") if reset else _rss_kib("VmHWM")
        step()
        peak_mib = (_rss_kib("VmHWM") - before) / 1024
    times = []
    for _ in range(repeats):
        sync()
        began = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - began)
    out = {"model": model_name, "size": size, "batch": batch, "step_s": statistics.median(times),
           "step_s_all": times, "peak_step_mib": peak_mib}
    if inference:
        model.eval()
        infer = []
        with torch.no_grad():
            model(x)
            for _ in range(repeats):
                sync()
                began = time.perf_counter()
                model(x)
                sync()
                infer.append(time.perf_counter() - began)
        out["infer_s"] = statistics.median(infer)
    return out


def run_isolated(**kwargs) -> dict:
    """:func:`measure` in a fresh spawned process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, kwds=kwargs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stem", default="cifar", choices=("standard", "cifar"), help="stem at 32 px (224 px: standard)")
    parser.add_argument("--batch-32", type=int, default=128)
    parser.add_argument("--batch-224", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "cost"))
    args = parser.parse_args(argv)
    command, rows = command_line(), []
    from tqdm.auto import tqdm

    configs = []
    for size, batch, stem in ((32, args.batch_32, args.stem), (224, args.batch_224, "standard")):
        for model in MODELS:
            configs.append((model, size, batch, stem, not parse_model(model)[1]))
            if parse_model(model)[1]:
                configs.append((model, size, batch // 2, stem, False))
    for model, size, batch, stem, inference in tqdm(configs, desc="cost"):
        row = run_isolated(model_name=model, size=size, batch=batch, device=args.device, stem=stem,
                           repeats=args.repeats, threads=args.threads, inference=inference)
        rows.append({**row, "stem": stem})
    table = ratios(rows)
    text = (f"# Cost benchmark ({args.device}, {args.threads} threads)\n\nCommand: `{command}`\n\n"
            "Ratios to plain resnet18 on the same batch size (times: median of "
            f"{args.repeats} steps; memory: peak rise during the first training step). AugShift's inference is "
            "the plain network's (same model), so its ratio is its base model's.\n\n" + table)
    print(text)
    out = Path(args.out)
    write_text_atomic(out / "results.md", text)
    write_json_atomic(out / "results.json", {"command": command, "device": args.device, "rows": rows})
    return 0


def ratios(rows: list[dict]) -> str:
    """Markdown table of times, memory and their ratios to resnet18 at the same size and batch."""
    lines = ["| px | model | batch | step ms | step / r18 | peak step MiB | memory / r18 | inference ms | inference / r18 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        base = next(r for r in rows if r["model"] == "resnet18" and r["size"] == row["size"])
        arch = parse_model(row["model"])[0]
        infer = next(r for r in rows if r["model"] == arch and r["size"] == row["size"])["infer_s"]
        name = row["model"] + (" (half batch)" if row["batch"] < base["batch"] else "")
        lines.append(
            f"| {row['size']} | {name} | {row['batch']} | {row['step_s'] * 1e3:.0f} | {row['step_s'] / base['step_s']:.2f} | "
            f"{row['peak_step_mib']:.0f} | {row['peak_step_mib'] / base['peak_step_mib']:.2f} | {infer * 1e3:.0f} | "
            f"{infer / base['infer_s']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
