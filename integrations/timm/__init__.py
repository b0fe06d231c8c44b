"""timm integration: `AugShiftTask` and the `augshift-timm` launcher for an unmodified train.py.

See `integrations/timm/README.md` (section "Add AugShift to a timm run") for the commands.
"""
from .launcher import main
from .task import AugShiftTask

__all__ = [
    "AugShiftTask",
    "main",
]
