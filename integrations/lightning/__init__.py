"""PyTorch Lightning integration: `AugShiftCallback`, AugShift training and ``val_shift_consistency`` /
``test_shift_consistency`` logging for any ``Trainer`` or ``LightningCLI`` script
(``--trainer.callbacks+=augshift.integrations.lightning.AugShiftCallback``).

Needs the ``lightning`` extra: ``pip install "augshift[lightning]"``.
"""
try:
    import lightning  # noqa: F401
    import torchmetrics  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised where lightning is missing
    raise ImportError('augshift.integrations.lightning needs PyTorch Lightning and torchmetrics: '
                      'pip install "augshift[lightning]"') from error

from .callback import AugShiftCallback

__all__ = ["AugShiftCallback"]
