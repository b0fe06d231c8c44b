"""Keep the best epoch: an `after_epoch` callback of `fit` that scores the model after
every epoch and keeps the weights of the best one, so a run can report its best and its last epoch."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional

from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint


class BestEpoch:
    """`fit(..., after_epoch=BestEpoch(model, score))`: `score(model)` after each epoch joins the epoch's row
    as `key`; the weights of the highest score (the first of equals) are kept in memory, or written to `path`
    (atomically, by the process with `write=True`) so that a resumed run keeps them. The best so far is read
    from the history rows, so a resumed run compares against the epochs before its interruption.

    Args:
        model: the model being trained (unwrapped); its `state_dict` is what is kept.
        score: `score(model)` -> a number, higher is better (e.g. the test top-1 %), or a dict of entries for the
            epoch's row holding that number under `key` (e.g. the test top-1 and consistency); called after
            every epoch on every process.
        key: the name of the score in the epoch's row (and in the history it is compared against).
        path: a file for the best weights (`{"identity", "epoch", "model"}`, `save_checkpoint`);
            `None`: keep them in memory (lost when the run is interrupted).
        write: whether this process writes `path` (the main process only, in a data-parallel run).
        identity: stored with the weights in `path` (e.g. the run's spec).

    Calling it as `best(epoch, history)` (`epoch` from 1, `history` the rows before it) returns
    `{key: score}`; `best_epoch` names the best epoch of a history and `load_best` puts its weights
    back into `model`.

    Examples:
        >>> model = nn.Linear(2, 2)
        >>> scores = iter([0.5, 0.9, 0.7])
        >>> best = BestEpoch(model, lambda net: next(scores), key="score")
        >>> history = []
        >>> for epoch in (1, 2, 3):  # what fit(..., after_epoch=best) does after each epoch
        ...     with torch.no_grad():
        ...         _ = model.weight.fill_(epoch)
        ...     history.append({"epoch": epoch, **best(epoch, history)})
        >>> best.best_epoch(history), [row["score"] for row in history]
        (2, [0.5, 0.9, 0.7])
        >>> best.load_best()
        >>> model.weight.unique().tolist()
        [2.0]
    """

    def __init__(self, model: nn.Module, score: Callable[[nn.Module], float], *, key: str = "test_accuracy",
                 path: Optional[Path] = None, write: bool = True, identity: Optional[dict] = None) -> None:
        self.model, self.score, self.key = model, score, key
        self.path, self.write, self.identity = path, write, identity
        self.state: Optional[dict] = None

    def __call__(self, epoch: int, history: list[dict]) -> dict:
        entries = self.score(self.model)
        entries = entries if isinstance(entries, dict) else {self.key: entries}
        value = entries[self.key]
        if value > max((row[self.key] for row in history), default=-math.inf):
            state = {name: tensor.detach().clone() for name, tensor in self.model.state_dict().items()}
            if self.path is None:
                self.state = state
            elif self.write:
                save_checkpoint(self.path, {"identity": self.identity, "epoch": epoch, "model": state})
        return entries

    def best_epoch(self, history: list[dict]) -> int:
        """The epoch (from 1) of the highest score in `history` (the first of equals)."""
        return max(history, key=lambda row: row[self.key])["epoch"]

    def load_best(self, device: object = "cpu") -> None:
        """Put the best epoch's weights into the model."""
        state = self.state if self.path is None else load_checkpoint(self.path, device=device)["model"]
        self.model.load_state_dict(state)
