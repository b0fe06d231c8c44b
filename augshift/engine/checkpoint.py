"""Training checkpoints written atomically (a crash leaves the old file or the new one, never half of one)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..reporting.files import write_bytes_atomic


def save_checkpoint(path: Union[str, Path], state: dict) -> Path:
    """`torch.save(state)` to `path` atomically: a crash leaves the old file or the new one, never half of one.

    Args:
        path: the file to write; its folder is created when missing.
        state: what to save (a dict of tensors, numbers, ... as `torch.save` takes it).

    Returns:
        `path` (a `Path`).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = save_checkpoint(Path(folder) / "run" / "checkpoint.pt", {"epoch": 3, "weight": torch.ones(2)})
        ...     print(path.name, load_checkpoint(path)["epoch"])
        checkpoint.pt 3
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: Union[str, Path], *, device: Any = "cpu") -> Optional[dict]:
    """The state saved at `path` (tensors on `device`), or `None` when there is no file.

    Args:
        path: a file written by `save_checkpoint` (or `torch.save`).
        device: where the loaded tensors go (`map_location`).

    Returns:
        The saved state, or `None` when `path` is not a file (a run that has not started yet).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = save_checkpoint(Path(folder) / "checkpoint.pt", {"epoch": 3, "weight": torch.ones(2)})
        ...     state = load_checkpoint(path, device="cpu")
        ...     missing = load_checkpoint(Path(folder) / "none.pt")
        >>> state["epoch"], state["weight"].tolist(), missing
        (3, [1.0, 1.0], None)
    """
    path = Path(path)
    return torch.load(path, map_location=device, weights_only=False) if path.is_file() else None
