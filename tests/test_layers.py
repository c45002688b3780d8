"""The package's rooms and their order, as the README's code map draws them: a module imports only
from its own room or from rooms below it, so the layering cannot erode unnoticed."""

from __future__ import annotations

import ast
from pathlib import Path

import got_lightning

# From the bottom; rooms on one line share a level and do not import each other.
LEVELS = [
    {"core"},
    {"tokens"},
    {"tokenizer"},
    {"model"},
    {"data"},
    {"generation"},
    {"evaluation"},
    {"training"},
    {"module"},
    {"reports", "export", "serving"},
    {"commands"},
    {"cli", "strategies"},
]
LEVEL = {room: number for number, rooms in enumerate(LEVELS) for room in rooms}
PACKAGE = Path(got_lightning.__file__).parent


def room_of(module: str) -> str:
    return module.split(".")[1]


def imports() -> list[tuple[str, str, int]]:
    """(importing file, imported module, line) for every import of got_lightning inside the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found += [
                (str(path.relative_to(PACKAGE.parent)), name, node.lineno) for name in names if name.startswith("got_lightning.")
            ]
    return found


def test_every_room_is_placed_and_no_import_points_up():
    rooms = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir() if path.suffix == ".py" or path.is_dir()}
    rooms -= {"__init__", "__pycache__"}
    assert rooms == set(LEVEL), "a room was added or removed: place it in LEVELS and in the README's code map"
    upward = []
    for file, module, line in imports():
        source = room_of(".".join(Path(file).with_suffix("").parts))
        target = room_of(module)
        if source != target and LEVEL[target] >= LEVEL[source]:
            upward.append(f"{file}:{line} ({source}) imports {module} ({target})")
    assert not upward, "\n".join(upward)
