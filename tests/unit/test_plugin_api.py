"""The plugin API is small and documented: a test fails when a hook is not."""

import inspect
from pathlib import Path

import serverprep.drivers as api
from serverprep.drivers import hookspecs

README = Path(__file__).resolve().parents[2] / "README.md"


def hook_names():
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("serverprep_")]


def test_every_hook_has_a_docstring_type_hints_and_the_prefix():
    assert hook_names(), "no hooks found"
    for name in hook_names():
        fn = getattr(hookspecs, name)
        assert inspect.getdoc(fn) and ":return:" in inspect.getdoc(fn), f"{name} lacks a docstring with :return:"
        assert "return" in fn.__annotations__, f"{name} lacks a return type"


def test_every_hook_is_documented_in_the_readme():
    text = README.read_text()
    for name in hook_names():
        assert f"`{name}`" in text, f"hook {name} is not documented in README.md"


def test_public_module_docstring_shows_the_entry_point_snippet():
    assert '[project.entry-points."serverprep.drivers"]' in api.__doc__
    for name in api.__all__:
        assert hasattr(api, name)
