"""The main job end to end on the KIT_FAST preset: every promised file, report rebuilds, resume.

The finished run is the session's `fast_compare` (tests/conftest.py), made once in-process; a test that
changes it works on a copy. The Ctrl-C case drives real processes, to the end of a real `compare`."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kit.__main__ import main
from kit.views import plots
from kit.views.report import FIGURES, load_histories

ENV = {**os.environ, "KIT_FAST": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def copied(fast_compare, tmp_path):
    """A copy of the session's finished comparison, to change."""
    return Path(shutil.copytree(fast_compare.path, tmp_path / "t"))


@pytest.mark.slow
def test_compare_writes_every_promised_file(fast_compare):
    path = fast_compare.path
    assert "report:" in fast_compare.stdout
    for name in [*FIGURES, "report.html", "config.json", "baselines.json", "embeddings.npz"]:
        assert (path / name).exists(), name
    for algo in ("deepcluster", "odc"):
        for name in ("history.json", "epochs.jsonl", "steps.jsonl", "labels", "checkpoint.pt", "embed_features"):
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
def test_an_existing_run_is_refused_and_a_finished_one_resumes_to_more_epochs(copied, capsys):
    path = copied
    assert main(["compare", "--name", "t", "--runs", str(path.parent)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    # resume to 3 epochs: both algorithms continue from their checkpoints and keep their history
    before = load_histories(path)
    assert main(["compare", "--name", "t", "--runs", str(path.parent), "--resume", "--epochs", "3"]) == 0
    after = load_histories(path)
    for algo in ("deepcluster", "odc"):
        assert len(after[algo]["epoch"]) == 3
        assert after[algo]["epoch"][:2] == before[algo]["epoch"][:2]
        assert all(np.array_equal(x, y) for x, y in zip(before[algo]["labels"], after[algo]["labels"]))


def test_plots_draw_what_they_promise():
    h = {"deepcluster": {"algo": "deepcluster", "epoch": [{"epoch": 0, "nmi_prev": None, "label_change": None, "knn": 0.5, "nmi_true": 0.3, "loss": 4.0},
                                   {"epoch": 1, "nmi_prev": 0.6, "label_change": 0.4, "knn": 0.6, "nmi_true": 0.4, "loss": 3.0}],
                         "step": {"loss": [4.0, 3.5, 3.0], "epoch": [0, 0, 1]}, "labels": [np.arange(10) % 3] * 2,
                         "monitor_init": {"knn": 0.4, "nmi_true": 0.2}},
         "odc": {"algo": "odc", "epoch": [{"epoch": 0, "nmi_prev": 0.7, "label_change": 0.2, "change_ratio": 0.5, "knn": 0.55, "nmi_true": 0.35}],
                 "step": {"loss": [4.0, 3.8], "epoch": [0, 0], "change_ratio": [0.6, 0.4]}, "labels": [np.arange(10) % 3] * 2}}
    fig = plots.stability(h)
    _, a, b = fig.axes  # AMI(t-1, t), NMI(t-1, t) with its chance level, label change
    # DeepCluster's epoch-1 clustering follows 1 epoch of training; ODC's epoch-0 snapshot follows 1 too
    assert len(a.lines) == 2 and list(a.lines[0].get_xdata()) == [1] and list(a.lines[1].get_xdata()) == [1]
    assert a.get_legend() is not None
    fig = plots.learning(h, {"raw_pixels_nmi": 0.5})
    knn_ax, nmi_ax, _ = fig.axes  # kNN, NMI, AMI to the true classes
    assert list(knn_ax.lines[0].get_xdata()) == [0, 1, 2]  # epoch 0 = random init
    assert any(l.get_label() == "k-means on raw pixels" for l in nmi_ax.lines)
    fig = plots.reassignment(h, smooth=1)
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_ylim() == (0, 1)
    assert len(plots.cluster_sizes(h, {"deepcluster": 3, "odc": 3}).axes) == 2
    assert len(plots.losses(h).axes[0].lines) == 2


@pytest.mark.slow
def test_ctrl_c_keeps_what_was_written_and_resume_finishes(tmp_path):
    import signal
    import time

    cmd = [sys.executable, "-m", "kit", "compare", "--name", "i", "--runs", str(tmp_path), "--epochs", "2"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "i" / "deepcluster" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C, mid-way through DeepCluster
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in err
    done = len(load_histories(tmp_path / "i")["deepcluster"]["epoch"])
    assert done == 1  # the finished epoch was kept; Ctrl-C came seconds before the second could end
    out = subprocess.run(cmd + ["--resume"], env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-1500:]
    h = load_histories(tmp_path / "i")
    assert [len(h[a]["epoch"]) for a in ("deepcluster", "odc")] == [2, 2]
    assert [r["epoch"] for r in h["deepcluster"]["epoch"]] == [0, 1]
    assert (tmp_path / "i" / "report.html").exists()
