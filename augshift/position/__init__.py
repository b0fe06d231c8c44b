"""Position information (Islam et al. 2021): the location task on canvases (`.canvas`), position-channel
ranking (`.channels`), the channel-ablation attack (`.attack`), the mosaic segmentation test bed
(`.segmentation`) and the paper's training recipe for them (`.recipes`)."""
from .attack import AttackCurve, ablate_channels, attack_curve
from .canvas import TASKS, LocationCanvas, LocationReport, evaluate_canvas, paste_in_cells, tile
from .channels import REGIONS, TRANSFORMS, ChannelRanking, get_module, pooled_activations, position_pairs, rank_position_channels
from .recipes import (
    PRESETS, SEGMENTATION_PRESETS, PositionConfig, canvas_scorer, canvas_source, epoch_batches, mosaic_source, train_on_canvas,
    train_position_model, train_segmentation,
)
from .segmentation import IGNORE_INDEX, MosaicSegmentation, mean_iou, region_masks, segmentation_scores

__all__ = [
    "LocationCanvas",
    "PositionConfig",
    "ablate_channels",
    "attack_curve",
    "evaluate_canvas",
    "rank_position_channels",
    "segmentation_scores",
    "train_on_canvas",
]
