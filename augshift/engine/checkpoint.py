"""Training checkpoints written atomically (a crash leaves the old file or the new one, never half of one)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..reporting.files import write_bytes_atomic


def save_checkpoint(path: Union[str, Path], state: dict) -> Path:
    """``torch.save(state)`` to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: Union[str, Path], *, device: Any = "cpu") -> Optional[dict]:
    """The state saved at ``path`` (tensors on ``device``), or ``None`` when there is no file."""
    path = Path(path)
    return torch.load(path, map_location=device, weights_only=False) if path.is_file() else None
