"""Adapters that put augshift into other tools: ``timm`` (``augshift-timm`` and :class:`~.timm.AugShiftTask`), Hugging
Face Accelerate (the example loop ``python -m augshift.integrations.accelerate.train``), ``transformers``
(:class:`~.transformers.AugShiftTrainer`) and ``evaluate`` (the ``shift_consistency`` module)."""
