"""Hugging Face ``transformers`` integration: `AugShiftTrainer` (a ``transformers.Trainer`` training with AugShift
and reporting shift consistency) and the example ``run_image_classification.py`` beside this file.

Needs the ``transformers`` extra: ``pip install "augshift[transformers]"``. ``transformers`` models work everywhere
else without any adapter (``hf:<id or folder>`` names, `augshift.models.adapter`).
"""
try:
    import transformers  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised where transformers is missing
    raise ImportError('augshift.integrations.transformers needs Hugging Face transformers: '
                      'pip install "augshift[transformers]"') from error

from .trainer import AugShiftTrainer

__all__ = ["AugShiftTrainer"]
