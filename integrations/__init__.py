"""Adapters that put augshift into other tools: timm, Accelerate, Hugging Face datasets and evaluate."""
