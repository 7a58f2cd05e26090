"""The import graph, read from kit's source (AST): the presentation layer (kit/views/, and the playground
kit/teaching/widgets.py) alone imports matplotlib, bokeh or ipywidgets; the training code and kit/analysis/ never import kit.views;
module-level imports point one way, with no cycles."""
import ast
from pathlib import Path

from kit.algorithms import SPECS

KIT = Path(__file__).resolve().parents[1] / "kit"
DRAWING = ("matplotlib", "bokeh", "ipywidgets")
TRAINING = ("algorithms", "algorithms.deepcluster", "algorithms.deepcluster_v2", "algorithms.memory", "algorithms.odc",
            "augment", "clustering", "collapse", "data", "distributed", "evaluate", "features", "metrics", "models", "runtime", "sampling", "seeds",
            "supervised", "training", "store", "store.runs", "store.files", "store.checkpoints")


def _module(path: Path) -> str:
    parts = path.relative_to(KIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(module_level_only: bool = False) -> dict[str, set[str]]:
    """{kit module: the modules it imports}, relative imports resolved; with `module_level_only`, only
    the imports that run when the module is imported (not those inside functions)."""
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
                found |= {f"{mod}.{a.name}" for a in node.names}  # `from . import plots` names a module
        out[name] = found
    return out


def test_only_the_presentation_layer_draws():
    drawing = {m for m, found in imports().items() if any(f.split(".")[0] in DRAWING for f in found)}
    assert drawing and all(m.startswith("kit.views.") or m == "kit.teaching.widgets" for m in drawing), sorted(drawing)


def test_the_training_code_never_imports_the_views():
    found = imports()
    for m in TRAINING:
        assert not any(f.startswith("kit.views") for f in found[f"kit.{m}"]), m


def test_the_analysis_computes_and_never_draws_or_imports_the_views():
    """kit/analysis/ (flows, transitions, UMAP layouts, run data) is what the views and `compare` compute from: it sits
    below the presentation layer, so a command that computes (compare's UMAP layouts) needs no view."""
    found = imports()
    analysis = [m for m in found if m.startswith("kit.analysis")]
    assert {"kit.analysis.flows", "kit.analysis.transitions", "kit.analysis.embed", "kit.analysis.rundata"} <= set(analysis)
    for m in analysis:
        assert not any(f.startswith("kit.views") or f.split(".")[0] in DRAWING for f in found[m]), m
    assert not any(f.startswith("kit.views.embed") for f in found["kit.compare"])


def test_module_level_imports_have_no_cycle():
    found = imports(module_level_only=True)
    graph = {m: {f for f in fs if f in found and f != m} for m, fs in found.items()}  # kit modules only
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


# one spec per algorithm (issue 30): the rest of kit reads the algorithms from kit/algorithms/__init__.py ------------------------
# Where an algorithm's name may still be written, and how often: its own module, the registry, and one file still to
# move (issue 30, open): the lesson's MNIST takeaway and the papers' numbers, which are to leave the library. The count
# may only go down.
NAMED_IN = {"kit.algorithms": None, "kit.algorithms.deepcluster": None, "kit.algorithms.odc": None, "kit.algorithms.deepcluster_v2": None, "kit.teaching.lesson": 40}


def _names_written(path: Path, names: set[str]) -> int:
    """String constants in `path` equal to an algorithm's name, docstrings (usage examples) left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return sum(isinstance(n, ast.Constant) and n.value in names and id(n) not in docstrings for n in ast.walk(tree))


def test_no_algorithm_is_named_outside_its_module_and_the_registry():
    from kit.algorithms import SPECS

    found = {_module(p): _names_written(p, set(SPECS)) for p in KIT.rglob("*.py")}
    over = {m: n for m, n in found.items() if n and (m not in NAMED_IN or (NAMED_IN[m] is not None and n > NAMED_IN[m]))}
    assert not over, f"algorithm names written outside kit/algorithms/__init__.py: {over} (read them from SPECS)"
    assert all(found[m] for m in NAMED_IN)  # each exception still holds names: drop it from NAMED_IN once it does not


def test_the_run_store_reads_runs_not_the_algorithms():
    """The run store (runs, files, checkpoints) sits below the algorithms: what a run holds, even which algorithms a
    comparison trained, it reads from the run's own files, never from the registry or an algorithm's module."""
    found = imports()
    algorithms = ("kit.algorithms", *(f"kit.algorithms.{spec.module}" for spec in SPECS.values()), "kit.algorithms.memory", "kit.training")
    for m in ("kit.store", "kit.store.runs", "kit.store.files", "kit.store.checkpoints"):
        assert not any(f.startswith(algorithms) for f in found[m]), (m, sorted(found[m]))
        # and nothing else of kit: the store is the bottom layer
        assert all(f.startswith("kit.store") for f in found[m] if f.split(".")[0] == "kit"), (m, sorted(found[m]))


def test_the_doctor_checks_the_install_without_importing_the_lessons():
    """`kit doctor` looks for the shipped example run as package data; it imports no teaching module."""
    found = imports()
    assert not any(f.startswith(("kit.teaching.example", "kit.teaching.lesson", "kit.teaching.widgets")) for f in found["kit.machine"])
