"""The fixed vocabularies the library's options offer, importable without torch: the command line builds its
parser from them (and answers `--help`) before anything heavy is imported. Each is used by the module that gives it
a meaning, which imports it from here."""
from __future__ import annotations

CANVAS_TASKS = ("location", "class")  # `augshift.position.canvas`: predict the cell, or the pasted image's class
TRANSFORMS = ("hflip", "vflip", "shift")  # `augshift.position.channels`: what the channel ranking compares against
# `augshift.position.channels`: a signed, region-specific ranking: the axis and the side of the image
REGIONS = {"left": ("x", -1), "right": ("x", 1), "top": ("y", -1), "bottom": ("y", 1)}
REGION_SETS = ("paper", "thirds", "halves")  # `augshift.position.segmentation`: the regions mIoU is reported for
DEFAULT_IGNORE_INDEX = 255  # `augshift.data.masks`: the mask value of unlabelled pixels
