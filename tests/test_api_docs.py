"""The public API's documentation: every public class and function of augshift and of its subpackages (their
``__all__``) names each of its arguments and has an example, and the examples run (doctest), its methods' too."""
from __future__ import annotations

import doctest
import importlib
import inspect
import re

import pytest
import torch
from torch import nn

PACKAGES = (
    "augshift", "augshift.config", "augshift.protocols", "augshift.data", "augshift.models", "augshift.engine",
    "augshift.position", "augshift.sweep", "augshift.reporting", "augshift.integrations.timm",
    "augshift.integrations.accelerate", "augshift.integrations.transformers",
)


def public_objects() -> dict[str, object]:
    """``{"package.name": object}`` for every class and function a package lists in ``__all__``."""
    found = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found[f"{package}.{name}"] = obj
    return found


PUBLIC = public_objects()


def documented_parameters(obj: object) -> list[str]:
    """The parameters a caller passes: a function's, or a class's constructor's (``self`` and ``cls`` left out)."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    if target is object.__init__:
        return []
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [name for name in signature.parameters if name not in ("self", "cls")]


def test_the_public_api_is_large_enough_to_be_worth_checking():
    assert len(PUBLIC) > 80 and "augshift.AugShift" in PUBLIC and "augshift.models.create_model" in PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_a_public_object_names_its_arguments_and_has_an_example(name):
    obj = PUBLIC[name]
    doc = "\n".join(filter(None, (inspect.getdoc(obj), inspect.getdoc(obj.__init__) if inspect.isclass(obj)
                                  and obj.__init__ is not object.__init__ else None)))
    assert ">>>" in doc, f"{name} has no example (a >>> block)"
    missing = [p for p in documented_parameters(obj) if not re.search(rf"\b{re.escape(p)}\b", doc)]
    assert not missing, f"{name}'s docstring does not describe {missing}"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_the_examples_run(name):
    obj = PUBLIC[name]
    module = inspect.getmodule(obj)
    # the object's docstring and its own methods' and properties' (recurse), never those of what it inherits
    tests = [test for test in doctest.DocTestFinder(recurse=True).find(obj, name, module=module,
                                                                         globs={"torch": torch, "nn": nn, **vars(module)})
             if test.name == name or test.name.startswith(name + ".")]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    examples = 0
    for test in tests:
        examples += len(test.examples)
        runner.run(test)
    assert examples > 0
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name}'s docstring (see the output above)"
