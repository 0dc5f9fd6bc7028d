"""The house rules of the import graph, checked on the source: floors, one door per outside system, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"service": "serverprep.service", "drivers": "serverprep.drivers", "clients": "serverprep.clients"}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            if {"node_modules", "build", "__pycache__"} & set(path.parts) or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path) -> set[str]:
    """Modules imported at module level (imports inside functions are deliberate late bindings)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


GRAPH = {name: imports(path) for name, path in modules().items()}


def importers_of(prefix: str) -> set[str]:
    return {name for name, found in GRAPH.items() if any(i == prefix or i.startswith(prefix + ".") for i in found)}


@pytest.mark.parametrize("outside, door", [
    ("asyncssh", {"serverprep.service.ssh"}),
    ("peewee", {"serverprep.service.store"}),
    ("playhouse", {"serverprep.service.store"}),
    ("cryptography", {"serverprep.service.secretbox"}),
    ("pluggy", {"serverprep.service.plugins", "serverprep.drivers", "serverprep.drivers.hookspecs"}),
    ("prometheus_client", {"serverprep.service.metrics"}),
    ("mcp", {"serverprep.clients.mcp"}),
    ("uvicorn", {"serverprep.clients.mcp.streamable"}),
    ("starlette", {"serverprep.clients.mcp.streamable"}),
    ("aiohttp", {"serverprep.clients.web"}),
])
def test_one_door_per_outside_system(outside, door):
    users = importers_of(outside)
    assert users, f"nothing imports {outside}: is this check still looking at the right thing?"
    assert {u for u in users if not any(u == d or u.startswith(d + ".") for d in door)} == set()


def test_floors_drivers_below_service_clients_apart():
    """drivers are pure (no service, no client, no gRPC); the client distribution never imports the service."""
    for name, found in GRAPH.items():
        if name.startswith("serverprep.drivers"):
            assert not {i for i in found if i.startswith(("serverprep.service", "serverprep.clients", "grpc", "asyncssh"))}, name
        if name.startswith("serverprep.clients"):
            assert not {i for i in found if i.startswith(("serverprep.service", "serverprep.drivers"))}, name


def local_edges() -> dict[str, set[str]]:
    """Imports between serverprep modules. ``from pkg import module`` is an edge to the module, not to
    the package; a module's own parent packages (imported first by Python anyway) are not edges."""
    edges = {}
    for name, found in GRAPH.items():
        targets = {i for i in found if i in GRAPH and i != name}
        targets -= {t for t in targets if any(o.startswith(t + ".") for o in targets) and t not in _direct(name)}
        edges[name] = {t for t in targets if not name.startswith(t + ".")}
    return edges


def _direct(name: str) -> set[str]:
    """Modules named in ``import x`` or as the module of ``from x import name-that-is-not-a-module``."""
    direct = set()
    for node in ast.parse(modules()[name].read_text()).body:
        if isinstance(node, ast.Import):
            direct |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if any(f"{node.module}.{a.name}" not in GRAPH for a in node.names):
                direct.add(node.module)
    return direct


def test_no_import_cycles():
    local = local_edges()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in local[node]:
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in local:
        if node not in state:
            visit(node)


def test_modules_stay_small_or_say_why():
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        if len(lines) > 350:
            head = "\n".join(lines[:5]).lower()
            assert "long because" in head, f"{name} has {len(lines)} lines and no reason at its top"


def test_every_setting_is_in_the_readme():
    import dataclasses

    from serverprep.service.settings import Settings

    text = (ROOT / "README.md").read_text()
    for f in dataclasses.fields(Settings):
        env = f.metadata["env"]
        assert f"`{env}" in text, f"{env} is not in the README"
        flag = f.metadata["flag"]
        if flag != "":
            assert f"`{flag or '--' + f.name.replace('_', '-')}`" in text, f"the flag of {f.name} is not in the README"
