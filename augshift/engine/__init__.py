"""The training engine: one loop (`fit` over a `Trainer`), its recipe (`TrainConfig`),
data-parallel placement, the seeding scheme, atomic checkpoints, the best epoch and evaluation helpers."""
from .best_epoch import BestEpoch
from .checkpoint import load_checkpoint, save_checkpoint
from .config import OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig, fast_path
from ..distributed import world_size
from ..seeding import epoch_seed, seed_generator, stream_seed
from ..distributed import Dist, average_buffers, barrier, init_distributed
from .evaluation import evaluate_classifier, evaluating
from .trainer import BatchSource, TensorBatches, Trainer, fit, recalibrate_batchnorm, steps_per_epoch

__all__ = [
    "TensorBatches",
    "TrainConfig",
    "Trainer",
    "evaluate_classifier",
    "fit",
]
