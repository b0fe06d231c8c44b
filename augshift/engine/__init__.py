"""The training engine: one loop (:func:`fit` over a :class:`Trainer`), its recipe (:class:`TrainConfig`),
data-parallel placement, the seeding scheme, atomic checkpoints, the best epoch and evaluation helpers."""
from .best_epoch import BestEpoch
from .checkpoint import load_checkpoint, save_checkpoint
from .config import OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig, fast_path
from ..distributed import world_size
from ..seeding import epoch_seed, seed_generator, stream_seed
from .distributed import Dist, average_buffers, barrier, init_distributed
from .evaluation import evaluate_classifier, evaluating
from .trainer import BatchSource, TensorBatches, Trainer, fit, recalibrate_batchnorm, steps_per_epoch

__all__ = [
    "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "BatchSource", "BestEpoch", "Dist", "TensorBatches", "TrainConfig",
    "Trainer", "average_buffers", "barrier", "epoch_seed", "evaluate_classifier", "evaluating", "fast_path", "fit",
    "init_distributed", "load_checkpoint", "recalibrate_batchnorm", "save_checkpoint", "seed_generator",
    "steps_per_epoch", "stream_seed", "world_size",
]
