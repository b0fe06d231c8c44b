"""Speed of `augshift.RandomShift` (zero padding) against its previous implementation and kornia's RandomCrop.

    python benchmarks/bench_shift.py                      # CPU, 2 threads: (256, 3, 32, 32) and (64, 3, 224, 224)
    python benchmarks/bench_shift.py --device cuda
    python benchmarks/bench_shift.py --quick              # a smoke run: well under a minute

Every configuration (batch size x dtype x memory format) times these calls, each doing the same work: a
random per-sample shift in [-4, 4]^2 px with a zero border (pad-and-crop), *parameter sampling included*:

* `new`: `augshift.RandomShift(4, mode="zeros")(x)` (this package: pad once + one row gather);
* `old`: the previous implementation of `shift` (copied below as `old_shift`, the "before"
  reference) behind the same `RandomShift` sampling;
* `kornia`: `kornia.augmentation.RandomCrop((H, W), padding=4)` (fill 0, `padding_mode="constant"`,
  `cropping_mode="slice"`: F.pad, then one slice per sample and a `cat`); it rejects uint8 images, so it
  is timed on float32 only, and it returns a contiguous batch for a channels-last input;
* `torch loop`: the plain-torch version of kornia's algorithm: `F.pad` + one slice per sample + `cat`.

Timing is interleaved: after warm-up calls, each round calls every candidate once (the order rotates from
round to round) and times each call on its own (`time.perf_counter`, with `torch.cuda.synchronize()`
before and after on CUDA); a configuration runs `--repeats` rounds or stops after `--min-run-time` seconds
(at least `--min-rounds`). Reported: the median per call, ratios of medians, and the 25-75 % range of the
per-round ratios. Before timing, the outputs are checked: `new` equals `old` and, replaying kornia's
sampled crop boxes, kornia's output equals `augshift.shift` (so all do the same work).

Writes `results.json` and `results.md` to `--out` (default `benchmarks/results/bench_shift/<device>`).
"""
from __future__ import annotations

import gc
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from paths import RESULTS

from augshift.arguments import Parser
from augshift.errors import run_command
from augshift import RandomShift, shift
from augshift.reporting.provenance import command_line
from augshift.reporting.results import write_results

MAX_SHIFT = 4
SIZES = ((256, 3, 32, 32), (64, 3, 224, 224))
QUICK_SIZES = ((64, 3, 32, 32), (8, 3, 224, 224))
DTYPES = ("float32", "uint8")
FORMATS = ("contiguous", "channels_last")
KORNIA_CALL = "kornia.augmentation.RandomCrop((H, W), padding=4)  # fill=0, padding_mode='constant', cropping_mode='slice'"


# ---------------------------------------------------------------------------------------------------------
# "Before" reference: augshift.shift as it was before the pad + row-gather rewrite (verbatim algorithm:
# per-sample source row / column maps, one advanced-indexing gather over (N, H, W, C), torch.where for zeros).

def _old_source_index(target: Tensor, size: int, mode: str) -> Tensor:
    if mode == "circular":
        return target.remainder(size)
    if mode == "reflect":
        if size == 1:
            return torch.zeros_like(target)
        period = 2 * (size - 1)
        folded = target.remainder(period)
        return torch.where(folded >= size, period - folded, folded)
    return target.clamp(0, size - 1)


def old_shift(x: Tensor, dx: Tensor, dy: Tensor, mode: str = "zeros") -> Tensor:
    """The previous `augshift.shift` for (N,) long tensors `dx`, `dy` (same range check, same output)."""
    n, _, h, w = x.shape
    dx_t, dy_t = dx.to(device=x.device, dtype=torch.long), dy.to(device=x.device, dtype=torch.long)
    if bool((dx_t.abs() >= w).any()) or bool((dy_t.abs() >= h).any()):
        raise ValueError("shift larger than the image")
    rows = torch.arange(h, device=x.device).unsqueeze(0) - dy_t.unsqueeze(1)
    cols = torch.arange(w, device=x.device).unsqueeze(0) - dx_t.unsqueeze(1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    src_rows = _old_source_index(rows, h, mode).unsqueeze(2)
    src_cols = _old_source_index(cols, w, mode).unsqueeze(1)
    out = x.permute(0, 2, 3, 1)[batch, src_rows, src_cols]
    if mode == "zeros":
        inside = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
        out = torch.where(inside.unsqueeze(-1), out, torch.zeros((), dtype=out.dtype, device=out.device))
    out = out.permute(0, 3, 1, 2)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()

# ---------------------------------------------------------------------------------------------------------


def make_batch(size, dtype: str, memory_format: str, device: torch.device) -> Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(size, generator=generator)
    x = (x * 255).round().to(torch.uint8) if dtype == "uint8" else x.to(getattr(torch, dtype))
    x = x.to(device)
    return x.contiguous(memory_format=torch.channels_last) if memory_format == "channels_last" else x


def candidates(x: Tensor) -> dict[str, Optional[Callable[[], Tensor]]]:
    """name -> zero-argument call doing a random zero-padded shift of `x` (None: not applicable)."""
    new = RandomShift(MAX_SHIFT, mode="zeros")
    before = RandomShift(MAX_SHIFT, mode="zeros")

    def old() -> Tensor:  # RandomShift.forward as it was: check, sample, shift
        before.check_size(x.shape[-2], x.shape[-1])
        params = before.sample(x.shape[0], x.device)
        return old_shift(x, params.dx, params.dy, "zeros")

    def torch_loop() -> Tensor:
        n, _, h, w = x.shape
        d = torch.randint(0, 2 * MAX_SHIFT + 1, (2, n)).tolist()
        padded = F.pad(x, (MAX_SHIFT,) * 4)
        return torch.cat([padded[i:i + 1, :, d[1][i]:d[1][i] + h, d[0][i]:d[0][i] + w] for i in range(n)]).contiguous()

    out = {"new": lambda: new(x), "old": old, "kornia": None, "torch loop": torch_loop}
    if x.is_floating_point():
        import kornia.augmentation as K

        crop = K.RandomCrop(tuple(x.shape[-2:]), padding=MAX_SHIFT)
        out["kornia"] = lambda: crop(x)
    return out


def check_same_work(x: Tensor) -> None:
    """`new` equals `old` for the same draws; kornia's crops equal `shift` for its own draws."""
    aug = RandomShift(MAX_SHIFT, mode="zeros")
    out = aug(x)
    p = aug.last_params
    if not torch.equal(out, old_shift(x, p.dx, p.dy, "zeros")):
        raise AssertionError("new and old implementations disagree")
    if x.is_floating_point():
        import kornia.augmentation as K

        crop = K.RandomCrop(tuple(x.shape[-2:]), padding=MAX_SHIFT)
        cropped = crop(x)
        corner = crop._params["src"][:, 0].to(torch.long)  # (N, 2): x, y of each crop's top-left in the padded image
        dx, dy = MAX_SHIFT - corner[:, 0], MAX_SHIFT - corner[:, 1]
        if not torch.equal(cropped, shift(x, dx.to(x.device), dy.to(x.device), "zeros")):
            raise AssertionError("kornia's RandomCrop does not match augshift.shift on its own crop boxes")


def interleaved(calls: dict[str, Callable[[], Tensor]], *, device: torch.device, warmup: int, repeats: int,
                min_rounds: int, budget_s: float) -> dict[str, list[float]]:
    """Seconds per call of each candidate: round-robin rounds, rotating order, each call timed on its own."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in names}
    began = time.perf_counter()
    for r in range(repeats):
        if r >= min_rounds and time.perf_counter() - began > budget_s:
            break
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync()
            t0 = time.perf_counter()
            calls[name]()
            sync()
            samples[name].append(time.perf_counter() - t0)
    return samples


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def summarize(samples: dict[str, list[float]]) -> dict:
    median = {name: statistics.median(v) for name, v in samples.items()}
    ratios = {}
    for ref in ("kornia", "old", "torch loop"):
        if ref in samples:
            per_round = [a / b for a, b in zip(samples["new"], samples[ref])]
            ratios[f"new/{ref}"] = {"ratio_of_medians": median["new"] / median[ref],
                                    "per_round_iqr": list(quartiles(per_round))}
    return {"median_s": median, "rounds": len(samples["new"]), "ratios": ratios}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt_ms(seconds: Optional[float]) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.3f}"


def fmt_ratio(r: Optional[dict]) -> str:
    if r is None:
        return "n/a"
    lo, hi = r["per_round_iqr"]
    return f"{r['ratio_of_medians']:.2f}x [{lo:.2f}, {hi:.2f}]"


def table(rows: list[dict]) -> str:
    head = ("| batch | dtype | memory format | new ms | old ms | kornia ms | torch loop ms | new/kornia | new/old "
            "| new/torch loop | rounds |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        m, r = row["median_s"], row["ratios"]
        lines.append(
            f"| {'x'.join(map(str, row['batch']))} | {row['dtype']} | {row['memory_format']} | {fmt_ms(m['new'])} "
            f"| {fmt_ms(m['old'])} | {fmt_ms(m.get('kornia'))} | {fmt_ms(m['torch loop'])} "
            f"| {fmt_ratio(r.get('new/kornia'))} | {fmt_ratio(r.get('new/old'))} | {fmt_ratio(r.get('new/torch loop'))} "
            f"| {row['rounds']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--quick", action="store_true", help="smaller batches, few rounds: a smoke run (< 1 min)")
    parser.add_argument("--batch", type=int, nargs=4, metavar=("N", "C", "H", "W"), action="append",
                        help="measure this batch shape instead of the defaults (repeatable)")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated: float32, uint8")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: contiguous, channels_last")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per configuration (default 300, quick 20)")
    parser.add_argument("--min-rounds", type=int, default=None, help="rounds before the time budget applies "
                        "(default 30, quick 5)")
    parser.add_argument("--min-run-time", type=float, default=None, help="time budget per configuration in seconds, "
                        "once --min-rounds are done (default 20, quick 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls of each candidate (default 10, quick 2)")
    parser.add_argument("--profile", action="store_true", help="also print where the new shift's time goes")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results/bench_shift/<device>)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    quick = args.quick
    sizes = [tuple(b) for b in args.batch] if args.batch else list(QUICK_SIZES if quick else SIZES)
    repeats = args.repeats or (20 if quick else 300)
    min_rounds = min(repeats, args.min_rounds or (5 if quick else 30))
    budget = args.min_run_time if args.min_run_time is not None else (1.0 if quick else 20.0)
    warmup = args.warmup if args.warmup is not None else (2 if quick else 10)
    dtypes = [d for d in args.dtypes.split(",") if d]
    formats = [f for f in args.formats.split(",") if f]
    import kornia

    rows = []
    for size in sizes:
        for dtype in dtypes:
            for memory_format in formats:
                x = make_batch(size, dtype, memory_format, device)
                check_same_work(x)
                calls = {name: fn for name, fn in candidates(x).items() if fn is not None}
                gc.collect()
                samples = interleaved(calls, device=device, warmup=warmup, repeats=repeats, min_rounds=min_rounds,
                                      budget_s=budget)
                row = {"batch": list(size), "dtype": dtype, "memory_format": memory_format, **summarize(samples)}
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
                del x, calls

    command = command_line()
    if device.type == "cuda":
        machine = torch.cuda.get_device_name(device)
    else:
        machine = f"{cpu_name()}, {args.threads} thread{'s' if args.threads != 1 else ''}"
    versions = f"torch {torch.__version__}, kornia {kornia.__version__}, python {platform.python_version()}"
    worst = [r["ratios"]["new/kornia"]["ratio_of_medians"] for r in rows if "new/kornia" in r["ratios"]]
    lines = [
        f"# bench_shift ({device.type}{', quick' if quick else ''})\n",
        f"Command: `{command}`\n",
        f"Device: {machine}; {versions}\n",
        f"Work: a random per-sample shift in [-{MAX_SHIFT}, {MAX_SHIFT}]^2 px with zero border, parameter sampling "
        "included, for every candidate. new = `augshift.RandomShift(4, mode='zeros')` (pad + one row gather); "
        "old = the previous `shift` (advanced-index gather + where) behind the same sampling; kornia = "
        f"`{KORNIA_CALL}` (float only: it rejects uint8; returns a contiguous batch); torch loop = F.pad + a slice "
        "per sample + cat. Outputs checked equal (kornia replayed on its own crop boxes).\n",
        f"Timing: interleaved round-robin (rotating order), each call timed alone"
        f"{' between torch.cuda.synchronize() calls' if device.type == 'cuda' else ''}; {warmup} warm-up calls each; "
        f"up to {repeats} rounds or {budget:g} s per configuration (at least {min_rounds} rounds); medians. "
        "Ratios are time(new) / time(other): below 1 means new is faster; [25 %, 75 %] of the per-round ratios "
        "in brackets.\n",
        table(rows),
    ]
    if worst:
        lines.append(f"\nnew / kornia: {min(worst):.2f}x to {max(worst):.2f}x "
                     f"({'new faster in every float32 configuration' if max(worst) < 1 else 'new NOT faster everywhere'}).")
    text = "\n".join(lines) + "\n"
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        x = make_batch(sizes[0], "float32", "contiguous", device)
        aug = RandomShift(MAX_SHIFT, mode="zeros")
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(20):
                aug(x)
        text += ("\nWhere the new shift's time goes (torch profiler, 20 calls, float32 contiguous "
                 f"{tuple(sizes[0])}):\n\n```\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
                 + "\n```\n")
    print()
    out = Path(args.out) if args.out else RESULTS / "bench_shift" / device.type
    write_results(out, "results", {
        "command": command, "device": str(device), "machine": machine, "threads": args.threads,
        "torch": torch.__version__, "kornia": kornia.__version__, "quick": quick, "max_shift": MAX_SHIFT,
        "kornia_call": KORNIA_CALL, "repeats": repeats, "min_rounds": min_rounds, "budget_s": budget,
        "warmup": warmup, "rows": rows,
    }, text)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="result files already written are whole"))
