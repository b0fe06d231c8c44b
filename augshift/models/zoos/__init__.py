"""The model zoos, one file each (`.timm`, `.torchvision`, `.transformers`), each a `Zoo`, and their registry
(`.registry`): `ZOOS`, asked in order, `zoo_of`, the zoo of a name, and `register_zoo`.

Adding a zoo: a file here with a `Zoo` subclass and its instance `ZOO`, registered below (timm, which takes every
name the others leave, first, so that it is asked last); a user's zoo: `register_zoo(MyZoo())` at run time.
"""
from __future__ import annotations

from . import timm, torchvision, transformers
from .base import Zoo
from .registry import ZOOS, register_zoo, supported_models, zoo_of

for _zoo in (timm.ZOO, torchvision.ZOO, transformers.ZOO):
    register_zoo(_zoo)

__all__ = ["ZOOS", "Zoo", "register_zoo", "supported_models", "zoo_of"]
