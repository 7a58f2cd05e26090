"""The import graph, read from kit's source (AST). kit is in layers, a folder each, from the bottom
up: the run store, the parts, the algorithms, the analysis, the views, the commands, the teaching
(README, "The library"). A module imports only from its own layer and those below; only the
presentation layer (kit/views/, and the playground kit/teaching/widgets.py) imports matplotlib,
bokeh or ipywidgets; module-level imports have no cycle."""
import ast
from pathlib import Path

from kit.algorithms import SPECS

KIT = Path(__file__).resolve().parents[1] / "kit"
DRAWING = ("matplotlib", "bokeh", "ipywidgets")
# bottom first; kit/__init__.py and kit/__main__.py sit above them all
LAYERS = ("store", "parts", "algorithms", "analysis", "views", "commands", "teaching")


def _module(path: Path) -> str:
    parts = path.relative_to(KIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(module_level_only: bool = False) -> dict[str, set[str]]:
    """{kit module: the modules it imports}, relative imports resolved; with `module_level_only`,
    only the imports that run when the module is imported (not those inside functions)."""
    out = {}
    for path in KIT.rglob("*.py"):
        name = _module(path)
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        tree = ast.parse(path.read_text())
        nodes = tree.body if module_level_only else list(ast.walk(tree))
        found = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
                mod = ".".join(p for p in (base, node.module or "") if p)
                found.add(mod)
                # `from . import plots` names a module
                found |= {f"{mod}.{a.name}" for a in node.names}
        out[name] = found
    return out


def test_only_the_presentation_layer_draws():
    drawing = {
        m for m, found in imports().items() if any(f.split(".")[0] in DRAWING for f in found)
    }
    assert drawing and all(
        m.startswith("kit.views.") or m == "kit.teaching.widgets" for m in drawing
    ), sorted(drawing)


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def test_every_module_sits_in_a_layer():
    loose = [m for m in imports() if _layer(m) == len(LAYERS) and m not in ("kit", "kit.__main__")]
    assert not loose, f"modules outside the layers: {loose} (put each in the folder of its layer)"
    assert set(LAYERS) == {p.name for p in KIT.iterdir() if (p / "__init__.py").exists()}


def arrows_up(found: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {f}" for m, fs in found.items() for f in fs
                  if f.startswith("kit.") and _layer(f) < len(LAYERS) and _layer(f) > _layer(m))


def test_no_import_points_up_a_layer():
    """Functions' own imports included: the training code never imports the views, the commands or
    the lesson, the views never import a command, and nothing below the teaching layer reads the
    lesson."""
    up = arrows_up(imports())
    assert not up, "imports that point up a layer:\n" + "\n".join(up)


def test_an_arrow_up_is_seen():
    """The report once imported the lesson for its takeaway, and the views the compare command for
    its defaults."""
    assert arrows_up(
        {
            "kit.views.report": {"kit.teaching.lesson", "kit.analysis.findings"},
            "kit.parts.data": {"kit.store.files"},
            "kit.__main__": {"kit.teaching.example"},
            "kit.views.plots": {"kit.commands.compare"},
        }
    ) == ["kit.views.plots -> kit.commands.compare", "kit.views.report -> kit.teaching.lesson"]


def test_the_analysis_computes_and_never_draws_or_imports_the_views():
    """kit/analysis/ (flows, transitions, UMAP layouts, run data) is what the views and `compare`
    compute from: it sits below the presentation layer, so a command that computes (compare's UMAP
    layouts) needs no view."""
    found = imports()
    analysis = [m for m in found if m.startswith("kit.analysis")]
    assert {
        "kit.analysis.flows",
        "kit.analysis.transitions",
        "kit.analysis.embed",
        "kit.analysis.rundata",
    } <= set(analysis)
    for m in analysis:
        assert not any(f.startswith("kit.views") or f.split(".")[0] in DRAWING for f in found[m]), m
    assert not any(f.startswith("kit.views.embed") for f in found["kit.commands.compare"])


def test_module_level_imports_have_no_cycle():
    found = imports(module_level_only=True)
    # kit modules only
    graph = {m: {f for f in fs if f in found and f != m} for m, fs in found.items()}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m, path):
        state[m] = 1
        for n in graph[m]:
            assert state.get(n) != 1, " -> ".join([*path, n])
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


# one spec per algorithm (issue 30): the rest of kit reads them from kit/algorithms/__init__.py ---
# Where an algorithm's name may be written: its own module and the registry.
NAMED_IN = {
    "kit.algorithms",
    "kit.algorithms.deepcluster",
    "kit.algorithms.odc",
    "kit.algorithms.deepcluster_v2",
}


def _names_written(path: Path, names: set[str]) -> int:
    """String constants in `path` equal to an algorithm's name, docstrings (usage examples) left
    out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return sum(
        isinstance(n, ast.Constant) and n.value in names and id(n) not in docstrings
        for n in ast.walk(tree)
    )


def test_no_algorithm_is_named_outside_its_module_and_the_registry():
    from kit.algorithms import SPECS

    found = {_module(p): _names_written(p, set(SPECS)) for p in KIT.rglob("*.py")}
    over = {m: n for m, n in found.items() if n and m not in NAMED_IN}
    assert not over, (
        f"algorithm names written outside kit/algorithms/__init__.py: {over} (read them from SPECS)"
    )
    assert all(found[m] for m in NAMED_IN)  # the test reads names: each of these writes its own


def test_the_run_store_reads_runs_not_the_algorithms():
    """The run store (runs, files, checkpoints) sits below the algorithms: what a run holds, even
    which algorithms a comparison trained, it reads from the run's own files, never from the
    registry or an algorithm's module."""
    found = imports()
    algorithms = (
        "kit.algorithms",
        *(f"kit.algorithms.{spec.module}" for spec in SPECS.values()),
        "kit.algorithms.memory",
        "kit.algorithms.training",
    )
    for m in ("kit.store", "kit.store.runs", "kit.store.files", "kit.store.checkpoints"):
        assert not any(f.startswith(algorithms) for f in found[m]), (m, sorted(found[m]))
        # and nothing else of kit: the store is the bottom layer
        assert all(f.startswith("kit.store") for f in found[m] if f.split(".")[0] == "kit"), (
            m,
            sorted(found[m]),
        )
