"""The invariance benchmark's presets (`PRESETS`), the paper's Table 2 numbers it is compared with and the pairs of
rows its tables compare: data shared by `invariance.py`, `throughput.py` (the paper preset's projected cost) and
`combine.py`, so that no script imports another."""
from __future__ import annotations

MSE_WEIGHTS = (1.0, 3.0, 10.0)  # the paper's loss at three scales (the CPU ablation: more weight, more consistency)
PRESETS = {
    # 2 CPU cores, ~1 h: standard timm stem at 32 px (16x cheaper than the CIFAR stem), a 20k subset
    "quick": dict(datasets=["cifar10"], seeds=[0, 1], train_size=20_000, test_size=None, epochs=6, batch_size=128,
                  lr=0.1, hflip=True, stem="standard", curve_size=500,
                  models=("resnet18", "resnetblur18", "resnet18+augshift", "resnet18+augshift:mse@3",
                          "resnetblur18+augshift")),
    # the paper's scale (GPUs): CIFAR stem, full training sets, 3 seeds, 200 epochs of SGD
    "paper": dict(datasets=["cifar10", "cifar100"], seeds=[0, 1, 2], train_size=None, test_size=None, epochs=200,
                  batch_size=128, lr=0.1, hflip=True, stem="cifar", curve_size=2000, fast_path=True,
                  models=("resnet18", "resnetblur18", "resnet18+augshift",
                          *(f"resnet18+augshift:mse@{w:g}" for w in MSE_WEIGHTS), "resnetblur18+augshift")),
    # ImageNet-1k (a cluster: --data imagenet=PATH, an image folder with train/ and val/, or a hub copy), ResNet-50
    # at torchvision's classic recipe's length, batch and peak lr (90 epochs, global batch 256, lr 0.1: "ResNet-50
    # v1", github.com/pytorch/vision/tree/main/references/classification) and its weight decay 1e-4. NOT reproduced:
    # RandomResizedCrop (the engine trains on in-memory tensors: each image resized (shorter side) and centre-cropped
    # to 224 px once, then shifted by up to 4 px and flipped), the step schedule (the engine's one-cycle) and the
    # plain momentum (Nesterov). The validation images are kept at 256 px for Zhang 2019's crop protocol (256 -> 224),
    # every other protocol and the accuracy use their centre 224 crop. Memory: the training set as uint8 tensors is
    # ~190 GB per run at 224 px (--train-limit subsamples). The plain row also runs at twice the epochs (the
    # image-passes of an AugShift run); checkpoints (checkpoint.pt, best.pt) stay in --workdir.
    "imagenet": dict(datasets=["imagenet"], seeds=[0], train_size=None, test_size=None, epochs=90, batch_size=256,
                     lr=0.1, weight_decay=1e-4, hflip=True, stem="standard", curve_size=2000, fast_path=True,
                     image_size=224, crop_from=256, train_images=1_281_167, equal_compute=("resnet50",),
                     protocols=("random", "circular", "fractional", "crop", "crop_worst"),
                     models=("resnet50", "resnetblur50", "resnet50+augshift", "resnetblur50+augshift"),
                     pairs=(("resnet50+augshift", "resnet50"), ("resnet50+augshift", "resnetblur50"),
                            ("resnetblur50+augshift", "resnetblur50"), ("resnetblur50+augshift", "resnet50+augshift"))),
}
PAPER_TABLE2 = {  # Islam et al. 2021, Table 2: top-1 / consistency (%)
    "cifar10": {"resnet18": (93.1, 90.8), "resnetblur18": (92.5, 92.5), "resnet18+augshift": (92.1, 94.8)},
    "cifar100": {"resnet18": (72.6, 70.1), "resnetblur18": (72.4, 78.2), "resnet18+augshift": (72.6, 85.6)},
}
PAIRS = [("resnet18+augshift", "resnet18"), ("resnet18+augshift", "resnetblur18"),
         *((f"resnet18+augshift:mse@{w:g}", other) for w in MSE_WEIGHTS for other in ("resnet18", "resnetblur18")),
         ("resnetblur18+augshift", "resnetblur18"), ("resnetblur18+augshift", "resnet18+augshift"),
         ("aps_resnet18", "resnet18"), ("aps_resnet18", "resnetblur18"), ("resnet18+augshift", "aps_resnet18"),
         ("aps_resnet18+augshift", "aps_resnet18")]
