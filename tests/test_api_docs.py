"""The public API's documentation: every public class and function of augshift and of its subpackages (their
`__all__`) names each of its arguments and has an example, and the examples run (doctest), its methods' too."""
from __future__ import annotations

import doctest
import importlib
import inspect
import re

import pytest
import torch
from torch import nn

from helpers import PACKAGES, documented_parameters, public_names, public_objects

MOST_PUBLIC_NAMES = 60  # what a maintainer keeps stable: the names users call, not the plumbing


PUBLIC = public_objects()


def test_the_public_surface_is_small_and_holds_what_users_call():
    names = public_names()
    assert len(names) <= MOST_PUBLIC_NAMES, sorted(names)
    core = ("shift", "RandomShift", "fractional_shift", "AugShift", "AugShiftConfig", "ConsistencyLoss", "PooledFeatures",
            "ShiftConsistency", "evaluate_shift_consistency", "permute_channels", "ChannelPermutation")
    assert {f"augshift.{name}" for name in core} <= set(names)
    constants = [name for name in names if name.rsplit(".", 1)[1].isupper()]
    assert constants == ["augshift.integrations.evaluate.METRIC_PATH"], "constants are not API"  # evaluate.load(it)


def test_the_lazy_top_level_exports_exactly_its_all():
    """`augshift` imports its public names on first use: the written-out `__all__` and the table of where each
    name comes from hold the same names, and each resolves to the object its module defines."""
    import importlib

    import augshift

    assert sorted(augshift.__all__) == sorted(augshift._EXPORTS)
    for name, module in augshift._EXPORTS.items():
        assert getattr(augshift, name) is getattr(importlib.import_module(f"augshift.{module}"), name)


def test_every_subpackage_of_augshift_is_listed():
    import pkgutil

    import augshift

    listed = {p.split(".")[1] for p in PACKAGES if p.count(".") >= 1}
    packages = {m.name for m in pkgutil.iter_modules(augshift.__path__) if m.ispkg} - {"cli"}  # cli: the commands
    assert packages <= listed | {"integrations"}, packages - listed


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


def attribute_docstrings(module) -> dict[str, str]:
    """`{"package.NAME": docstring}` of the module-level names whose assignment a string literal follows (the
    documentation shows it as the name's docstring; Python keeps it nowhere, so doctest cannot find it)."""
    import ast

    body = ast.parse(inspect.getsource(module)).body
    return {f"{module.__name__}.{target.id}": follower.value.value
            for node, follower in zip(body, body[1:])
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(follower, ast.Expr)
            and isinstance(follower.value, ast.Constant) and isinstance(follower.value.value, str)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name) and target.id in getattr(module, "__all__", ())}


def test_the_examples_of_public_constants_run():
    """A public constant's example (its attribute docstring, e.g. `METRIC_PATH`'s) runs too."""
    docs = {name: (doc, module) for module in map(importlib.import_module, PACKAGES)
            for name, doc in attribute_docstrings(module).items()}
    assert "augshift.integrations.evaluate.METRIC_PATH" in docs
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for name, (doc, module) in docs.items():
        test = doctest.DocTestParser().get_doctest(doc, {"torch": torch, **vars(module)}, name, module.__file__, 0)
        assert test.examples, f"{name}'s docstring has no example"
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) (see the output above)"
