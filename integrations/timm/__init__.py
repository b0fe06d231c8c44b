"""timm integration: `AugShiftTask` and the ``augshift-timm`` launcher for an unmodified train.py.

See ``integrations/timm/README.md`` (section "Add AugShift to a timm run") for the commands.
"""
from .consistency import loader_indices, loader_shift_consistency
from .launcher import add_arguments, main
from .script import SUPPORTED_TRAIN_SCRIPTS, TrainScriptError, load_train_script
from .task import AugShiftTask, PortableClassificationTask

__all__ = [
    "AugShiftTask",
    "main",
]
