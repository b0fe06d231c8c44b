"""Position information (Islam et al. 2021): the location task on canvases (`.canvas`), position-channel
ranking (`.channels`), the channel-ablation attack (`.attack`), the mosaic segmentation test bed
(`.segmentation`) and the paper's training recipe for them (`.recipes`)."""
from .attack import ablate_channels, attack_curve
from .canvas import LocationCanvas, evaluate_canvas
from .channels import rank_position_channels
from .recipes import PositionConfig, train_on_canvas
from .segmentation import segmentation_scores

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
