"""What produced a result: the exact command line, and the machine it ran on."""
from __future__ import annotations

import os
import platform
import shlex
import sys
from typing import Optional, Sequence

from ..distributed import launched_world_size


def command_line(argv: Optional[Sequence[str]] = None, *, prog: Optional[str] = None) -> str:
    """The command that is running: `prog` + `argv` when given (e.g. `augshift` and its arguments), else
    `sys.argv` (paths relative to the current folder); a `torchrun` prefix when several processes run."""
    if argv is None:
        script = sys.argv[0]
        words = [os.path.relpath(script) if os.path.isabs(script) else script, *sys.argv[1:]]
        prog = prog or "python"
    else:
        words = list(argv)
    world = launched_world_size()
    prefix = f"torchrun --nproc_per_node {world} " if world > 1 and argv is None else (f"{prog} " if prog else "")
    return prefix + shlex.join(words)


def machine(device: str = "cpu", threads: Optional[int] = None) -> str:
    """`"NVIDIA H100 80GB HBM3, torch 2.x"` or `"<cpu>, 2 threads, torch 2.x"`."""
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {threads or torch.get_num_threads()} threads, torch {torch.__version__}"
