"""The domain imports no outer layer: checked on the source, not by convention."""

from __future__ import annotations

import ast
from pathlib import Path

import app.domain

FORBIDDEN = ("aiohttp", "sqlalchemy", "asyncpg", "sqlite3", "aiosqlite", "dependency_injector",
             "orjson", "msgspec", "app.adapters", "app.entrypoints", "app.container")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_domain_imports_no_adapter_framework_or_driver() -> None:
    domain = Path(app.domain.__file__).parent
    offenders = {
        f"{path.name}: {name}"
        for path in domain.glob("*.py")
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not offenders
    assert len(list(domain.glob("*.py"))) >= 6  # the check saw the domain's modules
