"""The one-way import rule of ARCHITECTURE.md (Layout): ``trader → oms, strategies → broker_core``.

Every module is parsed (not imported) and each import it makes at run time (``if TYPE_CHECKING:``
blocks excluded) is checked against the rooms it may reach.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("broker_core", "oms", "strategies", "trader")
FORBIDDEN: dict[str, set[str]] = {
    "broker_core": {"oms", "strategies", "trader"},
    "oms": {"strategies", "trader"},
    "strategies": {"oms", "trader"},
    "trader": set(),
}
FRAMEWORKS = {"fastapi", "starlette", "sqlalchemy", "httpx", "prometheus_client", "uvicorn"}
"""What domain logic (``oms/core``, the contract, strategies' pure rules) never imports at run time."""
DOMAIN = ("oms/core", "broker_core/contract")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import outside ``if TYPE_CHECKING:`` blocks."""
    found: list[tuple[int, str]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
                continue
            for child in ast.walk(node) if not isinstance(node, ast.If) else [node]:
                if isinstance(child, ast.Import):
                    found.extend((child.lineno, a.name.split(".")[0]) for a in child.names)
                elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                    found.append((child.lineno, child.module.split(".")[0]))
            if isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)

    visit(ast.parse(source).body)
    return found


def _modules(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


def violations(room: str, banned: set[str], paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        for line, top in runtime_imports(path.read_text()):
            if top in banned:
                out.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line} imports {top}")
    return out


@pytest.mark.parametrize("room", ROOMS)
def test_imports_point_one_way(room: str) -> None:
    assert violations(room, FORBIDDEN[room], _modules(room)) == []


@pytest.mark.parametrize("room", DOMAIN)
def test_domain_logic_imports_no_framework(room: str) -> None:
    assert violations(room, FRAMEWORKS, _modules(room)) == []


def test_the_check_catches_a_backward_import(tmp_path: Path) -> None:
    bad = tmp_path / "strategies_bad.py"
    bad.write_text(
        "from oms.core.types import Intent\nimport trader.cli\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from oms.runtime import OmsRuntime\n"
    )
    assert [v.split(" imports ")[1] for v in violations("strategies", FORBIDDEN["strategies"], [bad])] == [
        "oms",
        "trader",
    ]


def test_every_room_exists() -> None:
    for room in ROOMS:
        assert (ROOT / room / "__init__.py").is_file(), room
