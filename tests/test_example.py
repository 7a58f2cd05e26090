"""The trained example run ships inside kit: complete enough for every notebook, a few MB, in the
wheel, and reopened (not retrained) by the notebooks' own run helper."""
import fnmatch
import json
import tomllib
from pathlib import Path

import pytest

import kit
from kit.teaching.example import EXAMPLE_RUN, notebook_config, notebook_run, runs_folder
from kit.store.runs import Run
from kit.commands.report import FIGURES, load_histories

ROOT = Path(__file__).resolve().parents[1]


def test_example_run_is_a_complete_small_comparison():
    run = kit.example_run()
    assert run == EXAMPLE_RUN and (run / "config.json").exists()
    histories = load_histories(run)
    assert set(histories) == {"deepcluster", "odc"}
    for algo, h in histories.items():
        assert h["epoch"] and "monitor_init" in h and len(h["labels"]) >= len(h["epoch"])
        feats = Run(run / algo).embed_features()
        assert "subset" in feats and any(k.startswith("epoch_") for k in feats)
    for name in FIGURES:  # what the quickstart displays
        assert (run / name).exists(), (
            f"the example run lacks {name}: regenerate it (bench/make_example_run.py)"
        )
    assert "Feature5" in (run / "evaluation.md").read_text()  # what notebook 04 shows
    size = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())
    assert size < 12 * 2**20, f"the example run is {size / 2**20:.1f} MiB"
    assert not (run / "report.html").exists()


def test_example_run_loads_as_notebooks_and_tables_read_it():
    from kit.commands.evaluate_run import load_backbone
    from kit.analysis.rundata import RunData

    run = kit.example_run()
    cfg = json.loads((run / "config.json").read_text())["compare"]
    train = kit.load_dataset(cfg["dataset"], n=cfg.get("n_train"))
    for algo in ("deepcluster", "odc"):
        # the slimmed float16 weights load into the float32 network
        backbone, _ = load_backbone(run, algo, train)
        assert next(backbone.parameters()).dtype.is_floating_point
    views = RunData.load(run)
    assert views.common_snapshots() >= 2 and len(views.subset) == len(views.layouts["odc"][0])


def test_every_example_file_is_package_data():
    """pyproject's package-data globs (setuptools: `*` stays inside a folder) cover every file of
    the run."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["kit.teaching"]
    files = [
        f.relative_to(ROOT / "kit" / "teaching").as_posix()
        for f in EXAMPLE_RUN.rglob("*")
        if f.is_file()
    ]
    missed = [
        f
        for f in files
        if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)
    ]
    assert files and not missed, f"not in the wheel: {missed}"


def test_runs_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_RUNS", str(tmp_path / "elsewhere"))
    assert runs_folder() == tmp_path / "elsewhere"
    monkeypatch.delenv("KIT_RUNS")
    (tmp_path / "repo" / "kit").mkdir(parents=True)
    (tmp_path / "repo" / "kit" / "__init__.py").write_text("")
    (tmp_path / "repo" / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "repo" / "notebooks")
    assert runs_folder() == tmp_path / "repo" / "runs"  # a checkout: runs/ beside notebooks/
    monkeypatch.chdir(tmp_path)
    assert runs_folder() == tmp_path / "runs"  # Colab: here


@pytest.mark.slow
@pytest.mark.notebooks("fast", "01_quickstart.ipynb")
def test_a_second_notebook_reuses_the_run(executed_notebook, tmp_path):
    """Notebook 01 (KIT_FAST) trained `quickstart-fast` under its runs folder; a second notebook's
    `notebook_run("quickstart")` there reopens it. On a copy: the session's executed notebook stays
    as it was."""
    import shutil

    first = (
        Path(executed_notebook("01_quickstart.ipynb", "fast").metadata.kit_test.runs)
        / "quickstart-fast"
    )
    run = Path(shutil.copytree(first, tmp_path / "quickstart-fast"))
    assert (run / "report.html").exists()
    stamp = (run / "odc" / "checkpoint.pt").stat().st_mtime_ns
    again = notebook_run("quickstart", fast=True, runs_root=tmp_path, progress=False)
    # reopened, not retrained
    assert again == run and (run / "odc" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert notebook_config(fast=True).epochs == len(load_histories(run)["odc"]["epoch"])


def _keys(path: Path) -> set:
    """The keys a run file records: a JSON object's, or the union over a JSON-lines file's
    records."""
    if path.suffix == ".jsonl":
        return set().union(
            *(json.loads(line) for line in path.read_text().splitlines() if line.strip())
        )
    return set(json.loads(path.read_text()))


def test_the_example_run_records_every_field_the_code_records_today(fast_compare):
    """The shipped run is made by today's code: every file a fresh `compare` writes that the example
    keeps (`kit.teaching.example.KEEP`), and every key of its histories, epoch and step records,
    baselines and settings, is in the example run too. A new field in the code fails here until
    `make example` rebuilds the run."""
    from kit.teaching.example import KEEP

    fresh, shipped = fast_compare.path, kit.example_run()
    for pattern in KEEP:
        if list(fresh.glob(pattern)):
            assert list(shipped.glob(pattern)), (
                f"the example run has no {pattern}: rebuild it (make example)"
            )
    files = [
        "config.json",
        "baselines.json",
        *(
            f"{a}/{f}"
            for a in ("deepcluster", "odc")
            for f in ("history.json", "epochs.jsonl", "steps.jsonl")
        ),
    ]
    for name in files:
        missing = _keys(fresh / name) - _keys(shipped / name)
        assert not missing, (
            f"the example run's {name} lacks {sorted(missing)}: rebuild it (make example)"
        )
    for algo in ("deepcluster", "odc"):
        old, new = (json.loads((r / algo / "history.json").read_text()) for r in (shipped, fresh))
        assert set(new.get("monitor_init", {})) <= set(old.get("monitor_init", {})), algo
        assert set(new["config"]) <= set(old["config"]), (
            f"{algo}'s config lacks {set(new['config']) - set(old['config'])}"
        )
    saved = json.loads((shipped / "config.json").read_text())["compare"]
    assert set(json.loads((fresh / "config.json").read_text())["compare"]) <= set(saved)
    k = {
        a: json.loads((shipped / a / "history.json").read_text())["config"]["n_clusters"]
        for a in ("deepcluster", "odc")
    }
    assert len(set(k.values())) == 1, (
        f"the example run compares two K ({k}): it must show one K for both"
    )
