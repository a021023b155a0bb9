"""No exception object is raised twice: Python adds each raise to the object's traceback, whose
frames hold the requests they served, so a module-level exception raised per request grows for
as long as the process lives."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).parents[2] / "app"


def test_no_module_level_exception_is_raised() -> None:
    raised_constants = []
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        made_once = {
            target.id
            for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id.endswith(("Error", "Exception"))
            for target in node.targets if isinstance(target, ast.Name)
        }
        raised_constants += [
            f"{path.relative_to(APP.parent)}:{node.lineno} raises {node.exc.id}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Name) and node.exc.id in made_once
        ]
    assert raised_constants == []
