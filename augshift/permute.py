"""PermuteNet: a fresh random channel permutation on every forward, after global pooling or a stage.

The permutation is put on the model with a hook, so the model's `state_dict` keys are unchanged and
a PermuteNet checkpoint loads into the plain model.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .errors import UsageError
from .outputs import classifier_of

POOL = "pool"


class ChannelPermutation:
    """Permute dim 1 of a module's tensor with a new permutation per forward (shared by the batch).

    Args:
        model: the model to put the permutation on (by a hook; its weights and `state_dict` keys are unchanged).
        where: `"pool"` permutes the pooled features (N, D) entering the classifier; any other value names a
            module of `model.named_modules()` (e.g. `layer3`) whose output (N, C, ...) is permuted.
        generator: a `torch.Generator` that makes the permutations reproducible.

    `last_permutation` holds the latest permutation, a (C,) long tensor; `remove` takes the hook off.

    Examples:
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> model = create_small_cnn(10, width=4)
        >>> permutation = ChannelPermutation(model, "pool", generator=torch.Generator().manual_seed(0))
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> sorted(permutation.last_permutation.tolist()) == list(range(32))  # the 32 pooled channels, permuted
        True
        >>> permutation.remove()
    """

    def __init__(self, model: nn.Module, where: str = POOL, *, generator: Optional[torch.Generator] = None) -> None:
        self.where, self.generator, self._model = where, generator, model
        self.last_permutation: Optional[Tensor] = None
        if where == POOL:
            self._handle = classifier_of(model).register_forward_pre_hook(self._permute_input)
        else:
            modules = dict(model.named_modules())
            if where not in modules or where == "":
                stages = [name for name, _ in model.named_children()]
                raise UsageError(
                    f"{type(model).__name__} has no module {where!r}; use where='pool' (after global pooling) or a "
                    f"module name such as {', '.join(stages)}"
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
        """Take the permutation off the model.

        Examples:
            >>> from augshift.models.small_cnn import create_small_cnn
            >>> model, x = create_small_cnn(10, width=4).eval(), torch.randn(2, 3, 32, 32)
            >>> plain = model(x)
            >>> permutation = ChannelPermutation(model, "pool")
            >>> permutation.remove()
            >>> torch.equal(model(x), plain), permutation.last_permutation is None  # no forward was permuted
            (True, True)
        """
        self._handle.remove()
        if getattr(self._model, "channel_permutation", None) is self:
            self._model.channel_permutation = None


def permute_channels(model: nn.Module, where: str = POOL, *, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Turn `model` into a PermuteNet in place (by a hook) and return it; see `ChannelPermutation`.

    The permutation is kept as `model.channel_permutation` (`model.channel_permutation.remove()` takes it off).
    A model that already is a PermuteNet is refused (`ValueError`).

    Args:
        model: the model (its `state_dict` keys stay those of the plain model).
        where: `"pool"` (the pooled features (N, D) entering the classifier) or the name of a module whose output
            (N, C, ...) is permuted.
        generator: a `torch.Generator` making the permutations reproducible.

    Returns:
        `model` itself, now permuting on every forward.

    Examples:
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> model = permute_channels(create_small_cnn(10, width=4).eval(), generator=torch.Generator().manual_seed(0))
        >>> x = torch.randn(1, 3, 32, 32)
        >>> torch.equal(model(x), model(x))  # a fresh permutation on every forward
        False
        >>> model.channel_permutation.remove()
        >>> torch.equal(model(x), model(x))  # the plain model again
        True
    """
    if getattr(model, "channel_permutation", None) is not None:
        raise ValueError(f"{type(model).__name__} is already a PermuteNet; call model.channel_permutation.remove() first")
    model.channel_permutation = ChannelPermutation(model, where, generator=generator)
    return model
