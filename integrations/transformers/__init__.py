"""Hugging Face ``transformers`` integration: `AugShiftTrainer` (a ``transformers.Trainer`` training with AugShift
and reporting shift consistency) and the example ``run_image_classification.py`` beside this file.

Needs the ``transformers`` extra: ``pip install "augshift[transformers]"``. ``transformers`` models work everywhere
else without any adapter (``hf:<id or folder>`` names, `augshift.models.adapter`).
"""
from augshift.errors import require

require("transformers", purpose="augshift.integrations.transformers")  # else an ImportError naming the extra

from .trainer import AugShiftTrainer

__all__ = ["AugShiftTrainer"]
