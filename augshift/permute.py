"""PermuteNet: a fresh random channel permutation on every forward, after global pooling or a stage.

The permutation is put on the model with a hook, so the model's ``state_dict`` keys are unchanged and
a PermuteNet checkpoint loads into the plain model.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .features import SUPPORTED_CLASSIFIERS, find_classifier

POOL = "pool"


class ChannelPermutation:
    """Permute dim 1 of a module's tensor with a new permutation per forward (shared by the batch).

    ``where="pool"`` permutes the pooled features entering the classifier; any other value names a
    module of ``model.named_modules()`` (e.g. ``layer3``) whose output (N, C, ...) is permuted.
    ``generator`` makes the permutations reproducible. ``last_permutation`` holds the latest one.
    """

    def __init__(self, model: nn.Module, where: str = POOL, *, generator: Optional[torch.Generator] = None) -> None:
        self.where, self.generator, self._model = where, generator, model
        self.last_permutation: Optional[Tensor] = None
        if where == POOL:
            self._handle = find_classifier(model).register_forward_pre_hook(self._permute_input)
        else:
            modules = dict(model.named_modules())
            if where not in modules or where == "":
                stages = [name for name, _ in model.named_children()]
                raise ValueError(
                    f"{type(model).__name__} has no module {where!r}; use where='pool' (after global pooling, "
                    f"{SUPPORTED_CLASSIFIERS}) or a module name such as {', '.join(stages)}"
                )
            self._handle = modules[where].register_forward_hook(self._permute_output)

    def permute(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise ValueError(f"cannot permute channels of {type(x).__name__}: expected a tensor (N, C, ...)")
        draw_device = self.generator.device if self.generator is not None else x.device
        perm = torch.randperm(x.shape[1], generator=self.generator, device=draw_device).to(x.device)
        self.last_permutation = perm
        return x.index_select(1, perm)

    def _permute_input(self, module: nn.Module, args: tuple) -> tuple:
        return (self.permute(args[0]), *args[1:])

    def _permute_output(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        return self.permute(output)

    def remove(self) -> None:
        """Take the permutation off the model."""
        self._handle.remove()
        if getattr(self._model, "channel_permutation", None) is self:
            self._model.channel_permutation = None


def permute_channels(model: nn.Module, where: str = POOL, *, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Turn ``model`` into a PermuteNet in place (by a hook) and return it; see :class:`ChannelPermutation`.

    The permutation is kept as ``model.channel_permutation`` (``model.channel_permutation.remove()`` takes it off).
    """
    if getattr(model, "channel_permutation", None) is not None:
        raise ValueError(f"{type(model).__name__} is already a PermuteNet; call model.channel_permutation.remove() first")
    model.channel_permutation = ChannelPermutation(model, where, generator=generator)
    return model
