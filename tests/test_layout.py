"""The package's layout holds: imports point down the tiers, no cycles, no module over 600 lines.

The tiers are README's Layout section (and the project's architecture note):
each module may import modules of its own tier or below, never above, so that a
feature has one obvious place and data flows one way. Read from the source with
:mod:`ast`, so nothing is imported and every ``import`` counts, also the ones
inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wstrust_wsgi"

#: Top-level module or subpackage of wstrust_wsgi -> tier (0 base ... 5 entry points).
TIERS = {
    "errors": 0, "ns": 0, "model": 0, "_xml": 0, "_time": 0, "_urls": 0, "_arguments": 0, "_log": 0, "stores": 0,
    "_checks": 0,
    "_toml": 0,
    "keys": 1, "xmldsig": 1, "xmlenc": 1,
    "soap": 2, "wssecurity": 2, "_wsgi": 2, "_health": 2,
    "wstrust": 3, "saml": 3, "metadata": 3,
    "sts": 4, "middleware": 4, "_reuse": 4, "_encrypted": 4, "_proof": 4, "client": 4, "_issued": 4, "federation": 4,
    "exchange": 5, "cli": 5, "config": 5, "deploy": 5, "_gunicorn": 5, "testing": 5, "__init__": 5, "__main__": 5,
}
#: Pairs that sit on one tier and must still not know each other.
APART = {("wstrust", "saml"), ("saml", "wstrust"), ("xmldsig", "keys")}
#: What the stores may import, whatever its tier (they never see the wire).
STORES_MAY_IMPORT = {"model", "errors", "_urls", "stores"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _part(path: Path) -> str:
    """The top-level part of wstrust_wsgi a file belongs to (``saml`` for saml/verify.py)."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["wstrust_wsgi", *parts])


def _imports(path: Path) -> set[str]:
    """Every wstrust_wsgi module ``path`` imports, as dotted names (``from . import x`` counted as x)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _dotted(path) if path.name == "__init__.py" else _dotted(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("wstrust_wsgi"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("wstrust_wsgi"):
                continue
            if node.module is None:  # ``from .. import _xml, ns``: the submodules themselves
                found.update(f"{module}.{alias.name}" for alias in node.names)
            else:
                found.add(module)
    return found


def _top(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def _violations(part: str, name: str, imports: set[str]) -> list[str]:
    """What is wrong with module ``name`` (in ``part``) importing ``imports``."""
    if part not in TIERS:
        return [f"{part}: not placed on a tier (add it to TIERS and to README's Layout)"]
    wrong = []
    for target in sorted(imports):
        other = _top(target)
        if other is None or other == part or other not in TIERS:
            continue
        if TIERS[other] > TIERS[part]:
            wrong.append(f"{name} (tier {TIERS[part]}) imports {target} (tier {TIERS[other]})")
        if (part, other) in APART:
            wrong.append(f"{name} imports {target}: the two are kept apart")
        if part == "stores" and other not in STORES_MAY_IMPORT:
            wrong.append(f"{name} imports {target}: stores import only model and errors")
    return wrong


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_tiers(path):
    assert _violations(_part(path), _dotted(path), _imports(path)) == []


def test_the_tier_check_can_fail():
    assert _violations("ns", "wstrust_wsgi.ns", {"wstrust_wsgi.sts"})
    assert _violations("saml", "wstrust_wsgi.saml.verify", {"wstrust_wsgi.wstrust.messages"})
    assert _violations("stores", "wstrust_wsgi.stores.sql", {"wstrust_wsgi.wssecurity"})
    assert _violations("newthing", "wstrust_wsgi.newthing", set())
    assert _violations("sts", "wstrust_wsgi.sts.service", {"wstrust_wsgi.saml", "wstrust_wsgi.soap"}) == []


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, [*trail, nxt])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_no_import_cycle():
    graph = {_dotted(path): {t for t in _imports(path) if t != _dotted(path)} for path in _modules()}
    assert _find_cycle(graph) is None


def test_the_cycle_check_can_fail():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_600_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 600, f"{path.relative_to(PACKAGE)} has {lines} lines: split it by concern"
