"""The one progress bar of the project: tqdm on stderr, drawn by the main process only.

Every loop that shows progress (training, evaluation, the position experiments, the integrations, the benchmarks)
makes its bar with `progress_bar`, so one policy holds everywhere: the bar goes to standard error (standard
output keeps the results), adapts to the terminal's width, is drawn by the process of rank 0 alone
(`augshift.distributed.rank`) and only when the caller enables it.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Iterable, Optional

if TYPE_CHECKING:
    from tqdm import tqdm


def progress_bar(iterable: Optional[Iterable[Any]] = None, *, desc: str, total: Optional[float] = None,
                 initial: float = 0, enabled: bool = True, leave: bool = False) -> "tqdm":
    """A tqdm bar on stderr over `iterable` (iterate it), or without one a bar to advance by hand
    (`bar.update(n)`; use it as a context manager to close it).

    Args:
        iterable: what the bar counts as it is iterated; `None` for a bar advanced with `update`.
        desc: the bar's label.
        total: the count that fills the bar (default: `len(iterable)` when it has one).
        initial: the count the bar starts at (e.g. the steps of the epochs a resumed run already trained).
        enabled: draw the bar; `False` gives a silent one (it still iterates; `update` does nothing).
            Processes other than rank 0 of a data-parallel run never draw.
        leave: keep the finished bar on the screen (default: erase it).

    Returns:
        The `tqdm` bar (`tqdm.auto`: a widget in notebooks).

    Examples:
        >>> sum(progress_bar(range(4), desc="sum", enabled=False))
        6
        >>> with progress_bar(desc="steps", total=10, initial=4, enabled=False) as bar:  # advanced by hand
        ...     for step in range(6):
        ...         bar.update(1)
        >>> bar.disable
        True
    """
    from tqdm.auto import tqdm

    from . import distributed

    return tqdm(iterable, desc=desc, total=total, initial=initial, leave=leave, file=sys.stderr, dynamic_ncols=True,
                disable=not enabled or distributed.rank() != 0)
