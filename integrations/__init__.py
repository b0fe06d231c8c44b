"""Adapters that put augshift into other tools: `timm` (`augshift-timm` and `AugShiftTask`), Hugging
Face Accelerate (the example loop `python -m augshift.integrations.accelerate.train`), `transformers`
(`AugShiftTrainer`), PyTorch Lightning
(`AugShiftCallback`) and `evaluate` (the `shift_consistency` module)."""
