"""model/ is layered: core <- damage, data, metrics <- training | evaluation <- reports | tools.

Each module may import its own subpackage and the layers below it, nothing beside or above; every
import counts, also those inside functions. So the restore path (core) carries no training, damage
or evaluation code, and there are no import cycles. model/ never imports Beam.
"""

import ast
from pathlib import Path

MODEL = Path(__file__).resolve().parents[2] / "model"
LAYER = {"core": 0, "damage": 1, "data": 1, "metrics": 1, "training": 2, "evaluation": 2, "reports": 3, "tools": 4,
         "__init__": 5}


def unit(module: str) -> str:
    """imagemend.model.core.restore -> core; imagemend.model.data -> data."""
    return (module.split(".")[2:] or ["__init__"])[0]


def imports() -> dict[str, set[str]]:
    """Module -> the imagemend.model modules it imports (relative imports resolved)."""
    out = {}
    for path in MODEL.rglob("*.py"):
        parts = path.relative_to(MODEL).with_suffix("").parts
        name = ".".join(("imagemend", "model", *parts)).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                mod = ".".join([*base, node.module] if node.module else base)
                found |= {f"{mod}.{a.name}" for a in node.names} | {mod}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        out[name] = found
    return out


def test_model_never_imports_beam():
    assert not {m: i for m, i in imports().items() if any(x.startswith("apache_beam") for x in i)}


def test_each_layer_imports_only_itself_and_the_layers_below():
    mods = imports()
    bad = []
    for mod, found in mods.items():
        for dep in found:
            if not dep.startswith("imagemend.model.") or dep not in mods or unit(dep) == unit(mod):
                continue
            if LAYER[unit(dep)] >= LAYER[unit(mod)]:
                bad.append(f"{mod} -> {dep}")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    mods = imports()
    graph = {m: {d for d in found if d in mods and d != m and not m.startswith(d + ".")} for m, found in mods.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
