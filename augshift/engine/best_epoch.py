"""Keep the best epoch: an ``after_epoch`` callback of :func:`~augshift.engine.fit` that scores the model after
every epoch and keeps the weights of the best one, so a run can report its best and its last epoch."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional

from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint


class BestEpoch:
    """``fit(..., after_epoch=BestEpoch(model, score))``: ``score(model)`` after each epoch joins the epoch's row
    as ``key``; the weights of the highest score (the first of equals) are kept in memory, or written to ``path``
    (atomically, by the process with ``write=True``) so that a resumed run keeps them. The best so far is read
    from the history rows, so a resumed run compares against the epochs before its interruption.
    """

    def __init__(self, model: nn.Module, score: Callable[[nn.Module], float], *, key: str = "test_accuracy",
                 path: Optional[Path] = None, write: bool = True, identity: Optional[dict] = None) -> None:
        self.model, self.score, self.key = model, score, key
        self.path, self.write, self.identity = path, write, identity
        self.state: Optional[dict] = None

    def __call__(self, epoch: int, history: list[dict]) -> dict:
        value = self.score(self.model)
        if value > max((row[self.key] for row in history), default=-math.inf):
            state = {name: tensor.detach().clone() for name, tensor in self.model.state_dict().items()}
            if self.path is None:
                self.state = state
            elif self.write:
                save_checkpoint(self.path, {"identity": self.identity, "epoch": epoch, "model": state})
        return {self.key: value}

    def best_epoch(self, history: list[dict]) -> int:
        """The epoch (from 1) of the highest score in ``history`` (the first of equals)."""
        return max(history, key=lambda row: row[self.key])["epoch"]

    def load_best(self, device: object = "cpu") -> None:
        """Put the best epoch's weights into the model."""
        state = self.state if self.path is None else load_checkpoint(self.path, device=device)["model"]
        self.model.load_state_dict(state)
