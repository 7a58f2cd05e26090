"""Claims with error bars (issue 15): several seeds of a comparison drawn as mean and band, sweeps
that resume cell by cell, and a validation split that never meets the test split."""
import hashlib
import json
import re

import numpy as np
import pytest

from kit.views import plots
from kit.analysis.seeds import difference, spread, spread_rows


def digests(images) -> set[str]:
    return {hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in images}


def files(folder) -> dict:
    """Bytes and modification time of every file under `folder`: a file rewritten with the same
    bytes still shows."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Interrupt:
    """A `log` that presses Ctrl-C right after the line starting with `after`, and keeps every
    line."""

    def __init__(self, after: str | None = None):
        self.after, self.lines = after, []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self.after and line.startswith(self.after):
            raise KeyboardInterrupt


# -- the validation split ----------------------------------------------------------------------
def test_the_validation_split_is_carved_from_train_and_never_meets_test():
    import kit
    from kit.commands.sweep import SweepConfig, load_splits, validation_split

    train, test = kit.load_dataset("mnist5k"), kit.load_dataset("mnist5k", split="test")
    # no duplicate digits to hide behind
    assert len(digests(kit.load_dataset("mnist5k", split="all").images)) == 5000
    fit, val = validation_split(train, 1000)
    assert (
        len(fit) + len(val) == len(train)
        and np.bincount(val.targets.numpy()).tolist() == [100] * 10
    )
    assert not digests(val.images) & digests(test.images) and not digests(fit.images) & digests(
        test.images
    )
    assert not digests(val.images) & digests(fit.images) and digests(val.images) <= digests(
        train.images
    )
    # what every sweep cell sees
    fit, val = load_splits(SweepConfig(n_train=300, n_val=100, n_clusters=[10]))
    assert (len(fit), len(val)) == (300, 100)
    assert not (digests(fit.images) | digests(val.images)) & digests(test.images)
    assert not digests(fit.images) & digests(val.images)


# -- sweeps ------------------------------------------------------------------------------------
def test_an_interrupted_sweep_resumes_without_retraining_its_first_cell(tmp_path, monkeypatch):
    import kit.commands.sweep as sweep

    splits, built = [], []
    load = sweep.load_dataset
    monkeypatch.setattr(
        sweep,
        "load_dataset",
        lambda name, split="train", **kw: splits.append(split) or load(name, split, **kw),
    )
    counting = {
        algo: (lambda cls: lambda cfg: built.append(cls.algo) or cls(cfg))(cls)
        for algo, cls in sweep.TRAINERS.items()
    }
    monkeypatch.setattr(sweep, "TRAINERS", counting)
    # two cells: DeepCluster, then ODC
    cfg = sweep.SweepConfig(n_clusters=[10], epochs=2, n_train=200, n_val=100)
    first, second = (c.name for c in cfg.cells())
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(
            "s", cfg, runs_root=tmp_path, progress=False, log=Interrupt(after="cell 1/2")
        )
    assert built == ["deepcluster"] and (tmp_path / "s" / first / "result.json").exists()
    assert not (tmp_path / "s" / second).exists() and not (tmp_path / "s" / "sweep.md").exists()
    before = files(tmp_path / "s" / first)
    log = Interrupt()
    table = sweep.run_sweep("s", cfg, runs_root=tmp_path, resume=True, progress=False, log=log)
    # the resume built no DeepCluster: its finished cell was not trained again
    assert built == ["deepcluster", "odc"]
    assert files(tmp_path / "s" / first) == before
    assert (
        log.lines[0].startswith(f"cell 1/2 {first}: finished earlier, kept")
        and "trained" in log.lines[1]
    )
    rows = [
        line
        for line in table.read_text().splitlines()
        if line.startswith("| ") and "---" not in line
    ][1:]
    assert (
        len(rows) == 2
        and (tmp_path / "s" / "sweep.png").exists()
        and (tmp_path / "s" / "sweep.csv").exists()
    )
    assert json.loads((tmp_path / "s" / second / "result.json").read_text())["epochs"] == 2
    assert set(splits) == {"train"}  # the sweep never loaded the test split


def test_a_diverging_cell_is_a_result_and_the_sweep_goes_on(tmp_path):
    from kit.commands.sweep import SweepConfig, run_sweep

    cfg = SweepConfig(
        algos=["odc"], n_clusters=[10], lr=[0.1, 1e6], epochs=1, n_train=200, n_val=100
    )
    table = run_sweep("d", cfg, runs_root=tmp_path, progress=False, log=Interrupt()).read_text()
    # 0.2: ODCConfig.small()
    assert "| odc | 10 | 1e+06 | — | 0.2 | 1 (1 diverged) | — | — | — |" in table
    assert "| **odc** | 10 | 0.1 |" in table  # the finite cell is the best one


def test_sweep_cells_cover_the_grid_once_each_and_name_their_settings():
    from kit.commands.sweep import SweepConfig

    cfg = SweepConfig(
        n_clusters=[30, 100, 30], lr=[0.05, 0.1], pca_dim=[16, 64], memory_momentum=[0.8], seeds=2
    )
    cells = cfg.cells()
    # seeds x (DeepCluster K x lr x pca_dim + ODC K x lr x momentum)
    assert len(cells) == 2 * (2 * 2 * 2 + 2 * 2 * 1)
    assert len({c.name for c in cells}) == len(cells)
    assert "odc,n_clusters=100,lr=0.05,memory_momentum=0.8,seed=32" in {c.name for c in cells}
    c = next(c for c in cells if c.algo == "deepcluster" and dict(c.settings)["pca_dim"] == 16)
    assert cfg.algo_config(c).pca_dim == 16 and cfg.algo_config(c).seed == c.seed


REFUSED = [
    (["compare", "--seeds", "0"], "--seeds"),
    (["sweep", "--seeds", "-1"], "--seeds"),
    (["sweep", "--lr", "0.1,-1"], "--lr"),
    (["sweep", "--lr", ","], "--lr"),
    (["sweep", "--pca-dim", "0"], "--pca-dim"),
    (["sweep", "--memory-momentum", "1.5"], "--memory-momentum"),
    (["sweep", "--n-clusters", "1,10"], "--n-clusters"),
    (["sweep", "--n-clusters", "5000"], "5000 clusters"),
    (["sweep", "--n-val", "0"], "--n-val"),
    (["sweep", "--n-val", "3999"], "--n-val"),
    (["sweep", "--n-train", "1"], "--n-train"),
    (["sweep", "--epochs", "0"], "--epochs"),
    (["sweep", "--batch-size", "1"], "--batch-size"),
]


@pytest.mark.parametrize("args,flag", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_refused_number_is_one_line_naming_its_flag_and_writes_nothing(
    args, flag, tmp_path, capsys
):
    from kit.__main__ import main

    assert main([*args, "--name", "x", "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and flag in err[0], err
    assert not (tmp_path / "runs").exists()


# -- several seeds -----------------------------------------------------------------------------
def test_one_seed_keeps_todays_layout_and_several_seeds_get_a_folder_each(tmp_path):
    from kit.commands.compare import CompareConfig, seed_run
    from kit.store.runs import Run, read_config
    from kit.store.files import atomic_write_json

    run = Run.create(tmp_path, "r")
    atomic_write_json(run.file("baselines.json"), {"raw_pixels_nmi": 0.5, "raw_pixels_knn": 0.9})
    one = CompareConfig(n_train=400, n_clusters=20)
    assert seed_run(run, one, 31) == (run, one)
    sub, cfg = seed_run(run, CompareConfig(n_train=400, n_clusters=20, seeds=3), 32)
    assert sub.path == tmp_path / "r" / "seed-32" and (cfg.seed, cfg.seeds) == (32, 1)
    assert read_config(sub.path)["compare"]["seed"] == 32 and (sub.path / "baselines.json").exists()
    assert sorted(p.name for p in run.path.iterdir() if p.is_dir()) == ["seed-32"]


def test_spread_is_mean_and_sample_std_over_seeds():
    assert spread([0.90, 0.92]) == "0.910 ± 0.014"
    assert spread([0.5]) == "0.500 ± 0.000" and spread([None, "—"]) == "—"
    assert spread([(0.8, 0.2), (0.6, 0.4)]) == "0.700 ± 0.141 / 0.300 ± 0.141"
    rows = spread_rows([[("kNN", 0.9, 0.8)], [("kNN", 0.7, None)]])
    assert rows == [("kNN", "0.800 ± 0.141", "0.800 ± 0.000")]
    assert difference([0.98, 0.97, 0.98], [0.93, 0.92, 0.94]) == "+0.047 (larger than the spread)"
    # the intervals overlap
    assert difference([0.90, 0.80], [0.86, 0.84]) == "+0.000 (within the spread)"
    assert difference([0.9], [None]) == "—" and difference([(0.8, 0.2)], [(0.6, 0.4)]) == "—"


def test_the_seeded_curves_draw_the_mean_and_a_one_std_band():
    def h(algo, knn):
        return {"algo": algo, "monitor_init": {"knn": 0.3}, "step": {}, "labels": [],
                "epoch": [{"epoch": e, "knn": v} for e, v in enumerate(knn)]}

    per_seed = [{"deepcluster": h("deepcluster", [0.5, 0.6]), "odc": h("odc", [0.4, 0.5])},
                {"deepcluster": h("deepcluster", [0.7, 0.8]), "odc": h("odc", [0.4, 0.7])}]
    fig = plots.seeded(per_seed, ("knn",), {"raw_pixels_knn": 0.9})
    ax = fig.axes[0]
    means = [line for line in ax.lines if line.get_label().startswith(("DeepCluster", "ODC"))]
    assert [line.get_label() for line in means] == ["DeepCluster (2 seeds)", "ODC (2 seeds)"]
    assert list(means[0].get_xdata()) == [0, 1, 2] and np.allclose(
        means[0].get_ydata(), [0.3, 0.6, 0.7]
    )
    # the DeepCluster band: mean ± sample std
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.max(), 0.7 + np.std([0.6, 0.8], ddof=1)) and np.isclose(band.min(), 0.3)
    assert sum(1 for line in ax.lines if line.get_alpha() == 0.35) == 4  # every seed drawn thin
    results = [
        {
            "algo": a,
            "n_clusters": k,
            "lr": 0.1,
            "seed": s,
            "knn": k / 1000 + s / 100,
            "nmi_true": 0.5,
            "nmi_prev": None,
        }
        for a in ("deepcluster", "odc")
        for k in (30, 100)
        for s in (31, 32)
    ]
    from kit.commands.sweep import METRICS, curves

    c = curves(results)
    x, y = c["n_clusters"]["knn"]["odc"][0]  # seed 31's curve: one point per K
    assert list(c) == ["n_clusters"] and x == [30, 100] and np.allclose(y, [0.34, 0.41])
    fig = plots.sweep(c, METRICS)
    # no NMI(t-1, t) yet
    assert len(fig.axes) == 5 and len(fig.axes[0].collections) == 2 and not fig.axes[3].lines
    # its chance level is no row of its own: it is drawn dotted on the NMI(t-1, t) row
    for r in results:
        r.update(nmi_prev=0.6, nmi_prev_chance=0.25 if r["n_clusters"] == 100 else 0.03)
    nmi_row = plots.sweep(curves(results), METRICS).axes[3]
    floor = [line for line in nmi_row.lines if line.get_label() == "ODC: chance level"][0]
    assert floor.get_linestyle() == ":" and np.allclose(floor.get_ydata(), [0.03, 0.25])


@pytest.mark.slow
def test_two_seeds_interrupted_after_the_first_resume_without_retraining_it_and_report_a_band(
    tmp_path,
):
    """`compare --seeds 2` (KIT_FAST, 200 images), stopped once seed 31 is done, then resumed from
    the command line: seed 31's files are not written again, each seed has its folder and report,
    and the top report draws mean and band. (Two tests before, one interrupted and one straight
    through; the resumed run is what the straight one made.)"""
    from kit.__main__ import main
    from kit.commands.compare import CompareConfig, run_compare
    from kit.store.runs import read_config
    from kit.commands.report import load_histories

    with pytest.raises(KeyboardInterrupt):
        # KIT_FAST's preset on half its images (K = 10: 20 a cluster)
        run_compare("s", CompareConfig.fast(seeds=2, n_train=200, n_clusters=10),
                    runs_root=tmp_path, progress=False, log=Interrupt(after="seed 31: done"))
    run = tmp_path / "s"
    before = files(run / "seed-31")
    assert not (run / "seed-32").exists() and any("checkpoint.pt" in f for f in before)
    assert main(["compare", "--name", "s", "--runs", str(tmp_path), "--resume"]) == 0
    after = files(run / "seed-31")
    assert {f: after[f] for f in before} == before  # nothing seed 31 trained was written again

    assert read_config(run)["compare"]["seeds"] == 2 and not (run / "deepcluster").exists()
    per_seed = {s: load_histories(run / f"seed-{s}") for s in (31, 32)}
    for s, h in per_seed.items():
        assert [len(h[a]["epoch"]) for a in ("deepcluster", "odc")] == [2, 2]
        assert read_config(run / f"seed-{s}")["compare"]["seed"] == s
        # its own report
        assert all((run / f"seed-{s}" / f).exists() for f in ("learning.png", "report.html"))
    # UMAP once
    assert (run / "seed-31" / "embeddings.png").exists() and not (
        run / "seed-32" / "embeddings.png"
    ).exists()
    assert not np.array_equal(per_seed[31]["odc"]["labels"][-1], per_seed[32]["odc"]["labels"][-1])
    html = (run / "report.html").read_text()
    assert "±" in html and "2 seeds" in html and 'href="seed-32/report.html"' in html
    assert "<th>DeepCluster − ODC</th>" in html
    sentence = re.search(r"Larger than the spread here: ([^<]*)", html).group(1)
    larger = re.findall(
        r"<tr><td>([^<]*)</td>(?:<td>[^<]*</td>){2}<td>[^<]*larger than the spread\)</td>", html
    )
    # it names those rows
    assert all(name in sentence for name in larger) and (larger or sentence.startswith("none"))
    assert (run / "learning.png").exists() and (run / "stability.png").exists()
