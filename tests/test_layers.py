"""The package's layers only import downward (issue 18): a module may import from its own layer
or the ones below, never above, lazy imports inside functions included. The layers, bottom up:"""

import ast
from pathlib import Path

LAYERS = [
    ["errors", "config", "io", "outputs", "logs", "labels", "hardware"],
    ["models"],
    ["data", "pretrained"],
    ["postprocess", "metrics"],
    ["training"],
    ["inference"],
    ["study"],
    ["bench", "distributed", "cli"],
]
PACKAGE = Path(__file__).resolve().parents[1] / "nucseg"


def room(module: str) -> str | None:
    """`nucseg.data.dataset` -> "data"; `nucseg` itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "nucseg" else None


def layer_of(name: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if name in rooms)


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "nucseg"]
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if room(name)]


def test_every_room_has_a_layer():
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").is_file())}
    placed = {name for names in LAYERS for name in names}
    assert rooms <= placed, f"place {sorted(rooms - placed)} in LAYERS"


def test_no_layer_imports_a_higher_one():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if here == "__init__":
            continue
        for line, name in imports_of(path):
            if layer_of(room(name)) > layer_of(here):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)
