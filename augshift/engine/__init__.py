"""The training engine: one loop (`fit` over a `Trainer`), its recipe (`TrainConfig`),
data-parallel placement, the seeding scheme, atomic checkpoints, the best epoch and evaluation helpers."""
from .config import TrainConfig
from .evaluation import evaluate_classifier
from .sources import TensorBatches
from .trainer import Trainer, fit

__all__ = [
    "TensorBatches",
    "TrainConfig",
    "Trainer",
    "evaluate_classifier",
    "fit",
]
