"""The timm zoo: names without a prefix (`resnet18`, also the project's registered `gapnet_resnet18`,
`aps_resnet18`...), built by `timm.create_model`, normalised by their `pretrained_cfg`, their stages read from
`feature_info`."""
from __future__ import annotations

from typing import Any, Optional

from torch import nn

from ...data.stats import Normalization
from ...outputs import UnsupportedModelError
from .base import Zoo
from .registry import supported_models


class TimmZoo(Zoo):
    """timm's models, by their timm name; the last zoo asked, it takes every name the others leave (so an unknown
    name is refused by timm, naming the other zoos' prefixes).

    Examples:
        >>> ZOO.claims("resnet18"), ZOO.create("resnet18", 3, pretrained=False, task="classification").fc.out_features
        (True, 3)
    """

    supported = "timm models (by name, e.g. resnet18)"

    def claims(self, name: str, *, task: Optional[str] = None) -> bool:
        return True

    def create(self, name: str, num_classes: Optional[int], *, pretrained: bool, task: str,
               **kwargs: Any) -> nn.Module:
        import timm

        source, _ = timm.models.parse_model_name(name)
        if source is None and not timm.is_model(name):  # an hf-hub: / local-dir: name is timm's to resolve
            raise UnsupportedModelError(f"timm has no model {name!r} (for torchvision write torchvision/{name}, "
                                        f"for transformers hf:<id or folder>)", supported=supported_models())
        return timm.create_model(name, pretrained=pretrained, **kwargs,
                                 **({} if num_classes is None else {"num_classes": num_classes}))

    def normalization(self, name: str, model: Optional[nn.Module]) -> Optional[Normalization]:
        from timm.data import resolve_data_config

        config = resolve_data_config({}, model=model)
        return Normalization(config["mean"], config["std"], f"timm's pretrained_cfg of {name}")

    def stages(self, model: nn.Module) -> Optional[list[str]]:
        info = getattr(model, "feature_info", None)  # timm's list of stages (duck-typed: a user's model may have one)
        if isinstance(info, list) and info and all(isinstance(i, dict) and "module" in i for i in info):
            return [i["module"] for i in info]
        return None


ZOO = TimmZoo()
