"""The main job end to end on the KIT_FAST preset: every promised file, report rebuilds, resume.

The finished run is the session's `fast_compare` (tests/conftest.py), made once in-process; a test
that changes it works on a copy. Ctrl-C in the middle of a `compare` is tests/test_cli.py's."""
import hashlib
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from kit.__main__ import main
from kit.views import plots
from kit.commands.report import FIGURES, is_current, load_histories

@pytest.fixture
def copied(fast_compare, tmp_path):
    """A copy of the session's finished comparison, to change."""
    return Path(shutil.copytree(fast_compare.path, tmp_path / "t"))


@pytest.mark.slow
def test_compare_writes_every_promised_file(fast_compare):
    path = fast_compare.path
    assert "report:" in fast_compare.stdout
    rebuild = shlex.split(fast_compare.stdout.split("rebuild it with: ", 1)[1].splitlines()[0])
    # "my runs, Ada's" comes back whole, once quoted
    assert rebuild == ["python", "-m", "kit", "report", str(path)]
    for name in [*FIGURES, "report.html", "config.json", "baselines.json", "embeddings.npz"]:
        assert (path / name).exists(), name
    for algo in ("deepcluster", "odc"):
        for name in (
            "history.json",
            "epochs.jsonl",
            "steps.jsonl",
            "labels",
            "checkpoint.pt",
            "embed_features",
        ):
            assert (path / algo / name).exists(), (algo, name)
    h = load_histories(path)
    assert [len(h[a]["epoch"]) for a in ("deepcluster", "odc")] == [2, 2]
    assert all("knn" in r and "nmi_true" in r for a in h for r in h[a]["epoch"])
    html = (path / "report.html").read_text()
    assert all(f'src="{f}"' in html for f in FIGURES) and "DeepCluster" in html and "ODC" in html


@pytest.mark.slow
def test_report_rebuilds_identical_figures(copied):
    digest = lambda: {f: hashlib.sha256((copied / f).read_bytes()).hexdigest() for f in FIGURES}  # noqa: E731
    before = digest()
    assert main(["report", str(copied)]) == 0
    assert digest() == before


@pytest.mark.slow
def test_an_existing_run_is_refused_and_a_finished_one_resumes_to_more_epochs_with_its_own_settings(
    copied, capsys
):
    path = copied
    assert main(["compare", "--name", "t", "--runs", str(path.parent)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    # one epoch more: both algorithms continue from their checkpoints, keep their history and the
    # saved settings, and the settings given again are listed as ignored
    before, cfg = load_histories(path), (path / "config.json").read_text()
    epochs = len(before["odc"]["epoch"])
    assert (
        main(
            [
                "compare",
                "--name",
                "t",
                "--runs",
                str(path.parent),
                "--resume",
                "--epochs",
                str(epochs + 1),
                "--lr",
                "0.3",
                "--n-clusters",
                "7",
            ]
        )
        == 0
    )
    said = capsys.readouterr().err
    assert (
        "ignored: --n-clusters 7 (the run uses " in said
        and "--lr 0.3 (the run uses each algorithm's preset)" in said
    )
    assert (path / "config.json").read_text() == cfg.replace(
        f'"epochs": {epochs}', f'"epochs": {epochs + 1}'
    )
    after = load_histories(path)
    for algo in ("deepcluster", "odc"):
        assert len(after[algo]["epoch"]) == epochs + 1
        assert after[algo]["epoch"][:epochs] == before[algo]["epoch"]
        assert all(
            np.array_equal(x, y) for x, y in zip(before[algo]["labels"], after[algo]["labels"])
        )
        assert max(after[algo]["labels"][-1]) < 20  # still K = 20


@pytest.mark.slow
def test_reopening_a_finished_run_draws_again_only_what_has_changed_since(copied, capsys):
    path, report = copied, copied / "report.html"
    drawn = report.stat().st_mtime_ns
    assert main(["compare", "--name", "t", "--runs", str(path.parent), "--resume", "--epochs",
                 str(len(load_histories(copied)["odc"]["epoch"]))]) == 0
    # nothing to train or draw
    assert "figures and report: up to date with the run" in "".join(capsys.readouterr())
    assert report.stat().st_mtime_ns == drawn and is_current(path)
    # a file it reads written after it (as `evaluate` writes evaluation.json): drawn again
    later = drawn + 10**9
    os.utime(path / "odc" / "history.json", ns=(later, later))
    assert not is_current(path)
    os.utime(path / "odc" / "history.json", ns=(drawn, drawn))
    (path / ".kit-lock").touch()  # a lock, a run marker: not something the report draws
    assert is_current(path)
    (path / "loss.png").unlink()  # a figure the page shows is gone
    assert not is_current(path)


def test_plots_draw_what_they_promise():
    h = {
        "deepcluster": {
            "algo": "deepcluster",
            "epoch": [
                {
                    "epoch": 0,
                    "nmi_prev": None,
                    "label_change": None,
                    "knn": 0.5,
                    "nmi_true": 0.3,
                    "loss": 4.0,
                },
                {
                    "epoch": 1,
                    "nmi_prev": 0.6,
                    "label_change": 0.4,
                    "knn": 0.6,
                    "nmi_true": 0.4,
                    "loss": 3.0,
                },
            ],
            "step": {"loss": [4.0, 3.5, 3.0], "epoch": [0, 0, 1]},
            "labels": [np.arange(10) % 3] * 2,
            "monitor_init": {"knn": 0.4, "nmi_true": 0.2},
        },
        "odc": {
            "algo": "odc",
            "epoch": [
                {
                    "epoch": 0,
                    "nmi_prev": 0.7,
                    "label_change": 0.2,
                    "change_ratio": 0.5,
                    "knn": 0.55,
                    "nmi_true": 0.35,
                }
            ],
            "step": {"loss": [4.0, 3.8], "epoch": [0, 0], "change_ratio": [0.6, 0.4]},
            "labels": [np.arange(10) % 3] * 2,
        },
    }
    fig = plots.stability(h)
    _, a, b = fig.axes  # AMI(t-1, t), NMI(t-1, t) with its chance level, label change
    # DeepCluster's epoch-1 clustering follows 1 epoch of training; ODC's epoch-0 snapshot follows 1
    # too
    assert (
        len(a.lines) == 2
        and list(a.lines[0].get_xdata()) == [1]
        and list(a.lines[1].get_xdata()) == [1]
    )
    assert a.get_legend() is not None
    fig = plots.learning(h, {"raw_pixels_nmi": 0.5})
    knn_ax, nmi_ax, _ = fig.axes  # kNN, NMI, AMI to the true classes
    assert list(knn_ax.lines[0].get_xdata()) == [0, 1, 2]  # epoch 0 = random init
    assert any(line.get_label() == "k-means on raw pixels" for line in nmi_ax.lines)
    fig = plots.reassignment(h, smooth=1)
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_ylim() == (0, 1)
    assert len(plots.cluster_sizes(h, {"deepcluster": 3, "odc": 3}).axes) == 2
    assert len(plots.losses(h).axes[0].lines) == 2



def test_the_embedding_snapshots_reuse_the_monitors_features(mnist_small, tmp_path, monkeypatch):
    """Issue 31, item 11: the flight recorder's snapshots extracted their subset again after the
    monitor had just extracted every training image under the same weights (about 4 s of a demo).
    They are now rows of the monitor's pass; the untrained network's snapshot (before any monitor)
    still extracts."""
    import torch

    import kit
    import kit.commands.compare as kc
    from conftest import tiny_odc_config

    train, test = mnist_small
    trainer = kit.ODC(tiny_odc_config(eval_every=1))
    run = kit.Run.create(tmp_path, "odc")
    subset = torch.arange(0, len(train), 7)
    capture = kc._EmbedCapture(trainer, train, subset, [0, 1, 2], run)
    calls = []
    extract = kc.extract_features
    monkeypatch.setattr(kc, "extract_features", lambda *a, **k: calls.append(1) or extract(*a, **k))
    capture.grab(0, train)
    trainer.fit(train, 2, callback=capture, eval_dataset=test, run=run)
    assert len(calls) == 1  # epoch 0's alone
    saved = run.embed_features()
    fresh = extract(trainer.model.backbone, train.select(subset), device="cpu")
    np.testing.assert_allclose(saved["epoch_0002"], fresh, rtol=1e-5, atol=1e-6)
