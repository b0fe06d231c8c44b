"""Pooled pre-classifier features, captured in the same forward that produces the logits.

`PooledFeatures` puts a forward pre-hook on the model's classifier and keeps the classifier's
input, i.e. the globally pooled features `(N, D)` (`(N, C, 1, 1)` is flattened). The hook runs inside the
model's own `forward`, so it works unchanged when the model is wrapped by DDP, `accelerate` or
`torch.compile`: nothing is ever computed beside the wrapped call. The model itself is not edited
(`state_dict` keys stay).

The capture verifies that the classifier's input is a global pool, whether the classifier was found or named: a
4-D map larger than 1 x 1 is refused, and so is the flattened output of a pooling module that kept an `h x w` map
(torchvision's VGG and AlexNet pool to 7 x 7 / 6 x 6 and flatten) or an `nn.Flatten` of an unpooled map (conv ->
flatten -> linear): such a classifier input is a spatial map, whose "consistency" would pull against the shift
instead of ignoring it.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Iterator, Optional

from torch import Tensor, nn

from .errors import UsageError
from .outputs import classifier_of, logits_of

POOLING_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)


class PooledFeatures:
    """Keep the pooled features (N, D) that enter `model`'s classifier while capturing is on.

    Args:
        model: the unwrapped model (not its DDP / accelerate / compiled wrapper); its classifier gets a forward
            pre-hook, and its pooling modules forward hooks (to refuse a classifier input that is a flattened map).
        classifier: the name (in `model.named_modules()`) of the module whose input is the pooled feature, when
            `classifier_of` cannot find it.

    In a training step, around the forward of the model or of its wrapper:

    ```python
    features = PooledFeatures(model)
    with features.capture():
        logits = wrapped_model(x)      # the model, or its DDP / accelerate / compiled wrapper
        pooled = features.pop()        # (N, D), same forward as the logits
    ```

    Examples:
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> model = create_small_cnn(10, width=4)
        >>> features = PooledFeatures(model)
        >>> with features.capture():
        ...     logits = model(torch.randn(2, 3, 32, 32))
        ...     pooled = features.pop()
        >>> logits.shape, pooled.shape
        (torch.Size([2, 10]), torch.Size([2, 32]))
        >>> features.remove()  # the hooks off the model again
    """

    def __init__(self, model: nn.Module, classifier: Optional[str] = None) -> None:
        self.module = classifier_of(model, classifier)
        self.model_name = type(model).__name__
        self._capturing = False
        self._captured: Optional[Tensor] = None
        self._last_pool: Optional[tuple[str, nn.Module, tuple[int, ...]]] = None  # (name, module, output shape)
        modules = list(model.named_modules())
        self._handles = [self.module.register_forward_pre_hook(self._hook)] + [
            module.register_forward_hook(functools.partial(self._pool_hook, name))
            for name, module in modules if isinstance(module, POOLING_MODULES)
        ] + [
            module.register_forward_pre_hook(functools.partial(self._flatten_hook, name))
            for name, module in modules if isinstance(module, nn.Flatten)
        ]

    def _pool_hook(self, name: str, module: nn.Module, args: tuple, output: Tensor) -> None:
        if self._capturing:
            self._last_pool = (name, module, tuple(output.shape))

    def _flatten_hook(self, name: str, module: nn.Module, args: tuple) -> None:
        """A flatten of a map that no pooling reduced (conv -> flatten -> linear) is a spatial input too."""
        if self._capturing and args and isinstance(args[0], Tensor) and args[0].dim() == 4:
            self._last_pool = (name, module, tuple(args[0].shape))

    def _refuse(self, module: nn.Module, found: str) -> None:
        raise UsageError(
            f"the input of {self.model_name}'s classifier ({type(module).__name__}) is {found}, not a globally pooled "
            f"(N, C) feature, which the consistency loss needs: pool globally before the classifier (e.g. "
            f"nn.AdaptiveAvgPool2d(1)), or name with classifier='<module name>' a module whose input is a global "
            "pool"
        )

    def _hook(self, module: nn.Module, args: tuple) -> None:
        if not self._capturing:
            return
        pooled = args[0] if args else None
        if isinstance(pooled, Tensor) and pooled.dim() == 4 and pooled.shape[-2:] == (1, 1):
            pooled = pooled.flatten(1)
        if not isinstance(pooled, Tensor) or pooled.dim() != 2:
            shape = tuple(pooled.shape) if isinstance(pooled, Tensor) else type(pooled).__name__
            self._refuse(module, f"of shape {shape}")
        if self._last_pool is not None:
            name, pool, shape = self._last_pool
            if len(shape) == 4 and shape[-1] * shape[-2] > 1 and shape[1] * shape[2] * shape[3] == pooled.shape[1]:
                self._refuse(module, f"the flattened {shape[1]} x {shape[2]} x {shape[3]} map of its module {name!r} "
                                     f"({pool})")
        self._captured = pooled

    @contextmanager
    def capture(self) -> Iterator["PooledFeatures"]:
        """Capture during this block only (so EMA copies and eval forwards keep nothing).

        Examples:
            >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
            >>> features = PooledFeatures(model, "3")  # the classifier, nn.Linear(4, 2), by name
            >>> with features.capture():
            ...     logits = model(torch.randn(5, 3, 8, 8))
            >>> features.pop().shape  # the (N, D) input of the classifier nn.Linear(4, 2)
            torch.Size([5, 4])
        """
        self._capturing, self._captured, self._last_pool = True, None, None
        try:
            yield self
        finally:
            self._capturing = False

    def pop(self) -> Tensor:
        """Return the features of the last forward inside `capture` and forget them.

        Examples:
            >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
            >>> features, x = PooledFeatures(model, "2"), torch.randn(2, 3, 4, 4)
            >>> with features.capture():
            ...     _ = model(x)
            >>> torch.allclose(features.pop(), x.mean(dim=(2, 3)))  # the pooled features themselves
            True
            >>> features.pop()  # popped once
            Traceback (most recent call last):
            ...
            RuntimeError: no pooled features were captured: ...
        """
        if self._captured is None:
            raise RuntimeError(
                f"no pooled features were captured: {self.model_name}'s classifier did not run inside capture()"
            )
        pooled, self._captured = self._captured, None
        return pooled

    def remove(self) -> None:
        """Remove the hooks from the model.

        Examples:
            >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
            >>> hooks_before = len(model[2]._forward_pre_hooks)
            >>> features = PooledFeatures(model, "2")
            >>> features.remove()
            >>> len(model[2]._forward_pre_hooks) == hooks_before
            True
        """
        for handle in self._handles:
            handle.remove()


def logits_and_features(model: nn.Module, x: Tensor, classifier: Optional[str] = None) -> tuple[Tensor, Tensor]:
    """One forward of `model` on `x`: returns `(logits (N, K), pooled features (N, D))`.

    Args:
        model: the classifier (its hooks are removed again afterwards).
        x: the model's input, images (N, C, H, W).
        classifier: the name of the module whose input is the pooled feature, when it cannot be found
            automatically (see `PooledFeatures`).

    Returns:
        `(logits, pooled)`: (N, K) and (N, D), from the same forward.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> logits, pooled = logits_and_features(model, torch.randn(2, 3, 8, 8), classifier="3")
        >>> logits.shape, pooled.shape
        (torch.Size([2, 2]), torch.Size([2, 4]))
    """
    features = PooledFeatures(model, classifier)
    try:
        with features.capture():
            logits = logits_of(model(x))
            return logits, features.pop()
    finally:
        features.remove()
