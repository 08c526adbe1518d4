"""Meta-tests: every hook is documented, typed, exercised by a test and named in the README."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from junction.plugins.hookspecs import JunctionHookSpecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [name for name, _ in inspect.getmembers(JunctionHookSpecs, inspect.isfunction)]


def test_there_are_hooks():
    assert {"register_providers", "register_middleware"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_and_typed(hook):
    function = getattr(JunctionHookSpecs, hook)
    doc = inspect.getdoc(function) or ""
    assert "Called" in doc, f"{hook}: the docstring must say when it is called"
    assert ":return:" in doc, f"{hook}: the docstring must state the result rule"
    signature = inspect.signature(function)
    for name, parameter in signature.parameters.items():
        if name == "self":
            continue
        assert f":param {name}:" in doc, f"{hook}: parameter {name} is undocumented"
        assert parameter.annotation is not inspect.Parameter.empty, f"{hook}: {name} has no type"
    assert signature.return_annotation is not inspect.Signature.empty


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_in_a_test(hook):
    sources = [path.read_text() for path in (ROOT / "tests").rglob("*.py") if path.name != Path(__file__).name]
    assert any(f"def {hook}(" in source for source in sources), f"no test plugin implements {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_in_the_readme(hook):
    assert hook in (ROOT / "README.md").read_text(), f"README.md does not document {hook}"
