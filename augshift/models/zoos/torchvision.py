"""The torchvision zoo: `torchvision/<name>` classifiers and its segmenters (`deeplabv3_*`, `fcn_*`,
`lraspp_*`, also without the prefix when a segmenter is asked for), normalised by their default weights'
transforms; their logits are the `"out"` of a segmenter's output and a segmenter's stage is its `backbone`."""
from __future__ import annotations

from typing import Any, Optional

from torch import Tensor, nn

from ...data.stats import Normalization
from ...outputs import UnsupportedModelError, classifier_of
from .base import Zoo

PREFIX = "torchvision/"


def torchvision_segmenters() -> list[str]:
    """The segmentation models of the installed torchvision (`deeplabv3_mobilenet_v3_large`, `fcn_resnet50`...).

    Returns:
        Their names, a list of str (`create_model(name, task="segmentation")` builds them).

    Examples:
        >>> "fcn_resnet50" in torchvision_segmenters()
        True
    """
    import torchvision

    return torchvision.models.list_models(module=torchvision.models.segmentation)


class TorchvisionZoo(Zoo):
    """torchvision's classifiers (`torchvision/<name>`) and segmenters (also by their bare name).

    Examples:
        >>> ZOO.claims("fcn_resnet50", task="segmentation"), ZOO.claims("fcn_resnet50", task="classification")
        (True, False)
    """

    supported = "torchvision classifiers and segmenters (torchvision/<name>)"

    def claims(self, name: str, *, task: Optional[str] = None) -> bool:
        return name.startswith(PREFIX) or (task in (None, "segmentation") and name in torchvision_segmenters())

    def create(self, name: str, num_classes: Optional[int], *, pretrained: bool, task: str,
               **kwargs: Any) -> nn.Module:
        import torchvision

        name = name.removeprefix(PREFIX)
        if task == "segmentation":
            if name not in torchvision_segmenters():
                raise UnsupportedModelError(f"torchvision has no segmenter {name!r}; it has "
                                            f"{', '.join(torchvision_segmenters())}")
            # the hub weights are COCO with the 21 VOC classes (and hold the auxiliary head); another count keeps the
            # ImageNet backbone under a new head
            whole = pretrained and num_classes in (None, 21)
            if whole:
                kwargs["aux_loss"] = True
            return torchvision.models.get_model(name, weights="DEFAULT" if whole else None,
                                                weights_backbone="DEFAULT" if pretrained and not whole else None,
                                                num_classes=num_classes or (None if whole else 21), **kwargs)
        if name not in torchvision.models.list_models(module=torchvision.models):
            raise UnsupportedModelError(f"torchvision has no classifier {name!r}", supported=self.supported)
        if not pretrained:
            return torchvision.models.get_model(name, **kwargs,
                                                **({} if num_classes is None else {"num_classes": num_classes}))
        model = torchvision.models.get_model(name, weights="DEFAULT", **kwargs)
        head = classifier_of(model)
        linear = head if isinstance(head, nn.Linear) else [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
        if num_classes is not None and linear.out_features != num_classes:  # a new head on the pretrained trunk
            fresh = nn.Linear(linear.in_features, num_classes)
            owner = next(m for m in model.modules() if any(c is linear for c in m.children()))
            setattr(owner, next(n for n, c in owner.named_children() if c is linear), fresh)
        return model

    def normalization(self, name: str, model: Optional[nn.Module]) -> Optional[Normalization]:
        import torchvision

        weights = torchvision.models.get_model_weights(name.removeprefix(PREFIX)).DEFAULT
        transforms = weights.transforms()
        return Normalization(transforms.mean, transforms.std, f"the transforms of torchvision's {weights}")

    def stages(self, model: nn.Module) -> Optional[list[str]]:
        if type(model).__module__.startswith("torchvision.models.segmentation"):  # their heads read backbone(x)["out"]
            return ["backbone"]
        return None

    def checkpoint_options(self, state_dict: dict[str, Tensor]) -> dict[str, Any]:
        return {"aux_loss": True} if any(k.startswith("aux_classifier.") for k in state_dict) else {}


ZOO = TorchvisionZoo()
