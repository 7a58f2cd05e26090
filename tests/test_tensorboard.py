"""Optional TensorBoard logging (issue 23): what TensorBoard reads back equals the run's own
history."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import kit
from conftest import tiny_dc_config, tiny_odc_config
from kit.store.runs import Run

pytest.importorskip(
    "tensorboard",
    reason="the tensorboard extra is not installed (pip install -e '.[tensorboard]' in kit's "
           "folder)",
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def read(folder: Path) -> EventAccumulator:
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    ea.Reload()
    return ea


@pytest.fixture(scope="module")
def logged(tmp_path_factory, mnist_small):
    """A 2-epoch ODC and DeepCluster, each with the flight recorder's subset saved at epochs 0, 1,
    2."""
    from kit.commands.compare import _EmbedCapture
    from kit.views.tensorboard_log import TensorBoardLog

    root, train = tmp_path_factory.mktemp("tb"), mnist_small[0]
    out = {}
    for algo, trainer in (("odc", kit.ODC(tiny_odc_config(eval_every=1))),
                          ("deepcluster", kit.DeepCluster(tiny_dc_config(eval_every=1)))):
        run = kit.Run.create(root, algo)
        capture = _EmbedCapture(trainer, train, torch.arange(0, len(train), 4), [0, 1, 2], run)
        capture.grab(0, train)
        tb = TensorBoardLog(root / "tb" / algo, settings=trainer.config.to_dict(), trainer=trainer)

        def both(record, capture=capture, tb=tb):
            capture(record)
            tb(record)

        trainer.fit(train, 2, callback=both, eval_dataset=mnist_small[1], run=run)
        n = tb.projector(run.path, train)
        tb.close()
        out[algo] = (trainer.history, root / "tb" / algo, n, capture.subset)
    return out


@pytest.mark.parametrize("algo", ["odc", "deepcluster"])
def test_the_scalars_equal_the_history(logged, algo):
    history, folder, _, _ = logged[algo]
    ea = read(folder)
    steps = [e.value for e in ea.Scalars("step/loss")]
    assert steps == pytest.approx(history["step"]["loss"], rel=1e-6)  # float32 in the event file
    if algo == "odc":
        assert [e.value for e in ea.Scalars("step/change_ratio")] == pytest.approx(
            history["step"]["change_ratio"], rel=1e-6
        )
    for key in ("loss", "knn", "nmi_prev", "ami_prev", "label_change", "max_size"):
        want = [
            r[key]
            for r in history["epoch"]
            if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
        ]
        assert [e.value for e in ea.Scalars(f"epoch/{key}")] == pytest.approx(want, rel=1e-6), key
    # each epoch's numbers at the step that ends it
    ends = [e.step for e in ea.Scalars("epoch/loss")]
    n_steps = len(history["step"]["loss"])
    assert ends[-1] == n_steps and ends[0] == n_steps // 2
    assert len(ea.Histograms("epoch/cluster_sizes")) == 2


@pytest.mark.parametrize("algo", ["odc", "deepcluster"])
def test_the_projector_rows_match_the_features_and_labels(logged, algo):
    history, folder, n, subset = logged[algo]
    assert n == 3
    config = (folder / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 3 and "sprite" in config
    last = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit())[-1]
    emb = next(last.iterdir())
    rows = list(csv.reader((emb / "metadata.tsv").open(), delimiter="\t"))
    assert rows[0] == ["class", "cluster", "changed"] and len(rows) == len(subset) + 1
    feats = np.loadtxt(emb / "tensors.tsv", delimiter="\t")
    saved = Run(folder.parent.parent / algo).embed_features()["epoch_0002"]
    np.testing.assert_allclose(feats, saved, rtol=1e-5, atol=1e-6)
    snap = history["labels"][min(2, len(history["labels"]) - 1)]
    assert [int(r[1]) for r in rows[1:]] == snap[subset.numpy()].tolist()
    assert (emb / "sprite.png").exists()


def test_the_projector_names_each_images_class(logged, mnist_small, tmp_path):
    """Rows say the class by its dataset's name ("Ankle boot" on fashion5k), not its number."""
    from kit.views.tensorboard_log import TensorBoardLog

    history, folder, n, subset = logged["odc"]
    named = mnist_small[0].select(torch.arange(len(mnist_small[0])))
    named.classes = [f"kind {c}" for c in range(10)]
    tb = TensorBoardLog(tmp_path / "tb", settings={})
    assert tb.projector(folder.parent.parent / "odc", named) == n
    tb.close()
    last = sorted(p for p in (tmp_path / "tb").iterdir() if p.is_dir() and p.name.isdigit())[-1]
    rows = list(csv.reader((next(last.iterdir()) / "metadata.tsv").open(), delimiter="\t"))[1:]
    assert [r[0] for r in rows] == [f"kind {int(c)}" for c in named.targets[subset]]


@pytest.mark.slow
def test_compare_with_tensorboard_logs_what_its_history_holds(tmp_path):
    """`python -m kit compare --tensorboard`: the event files' scalars equal each algorithm's
    history, and a Projector config with a sprite and metadata sits beside them."""
    from kit.__main__ import main

    assert (
        main(
            [
                "compare",
                "--dataset",
                "digits",
                "--n-train",
                "200",
                "--epochs",
                "2",
                "--tensorboard",
                "--name",
                "tb",
                "--runs",
                str(tmp_path),
            ]
        )
        == 0
    )
    run = tmp_path / "tb"
    for algo in ("deepcluster", "odc"):
        history = kit.Run(run / algo).load_history()
        ea = read(run / "tb" / algo)
        assert [e.value for e in ea.Scalars("step/loss")] == pytest.approx(
            history["step"]["loss"], rel=1e-6
        )
        assert [e.value for e in ea.Scalars("epoch/knn")] == pytest.approx(
            [r["knn"] for r in history["epoch"]], rel=1e-6
        )
        config = (run / "tb" / algo / "projector_config.pbtxt").read_text()
        assert "sprite" in config and "metadata.tsv" in config


@pytest.mark.parametrize("algo", ["deepcluster", "odc"])
def test_a_resumed_run_keeps_every_step_and_epoch_it_had_logged(
    tmp_path, mnist_small, monkeypatch, algo
):
    """Issue 31, item 1: the writer of a resumed run purged from the steps done, not one past them,
    so the last step and the last epoch's numbers went missing (a resume with nothing left to train
    lost them at `close`). Records arrive in bursts (DeepCluster's losses are read every READ_EVERY
    steps): each keeps its own step number."""
    import time
    import types

    from tensorboard.summary.writer import event_file_writer

    import kit.algorithms.training
    from kit.views.tensorboard_log import TensorBoardLog

    monkeypatch.setattr(kit.algorithms.training, "READ_EVERY", 4)
    # TensorBoard reads event files in name order: a time in seconds, then a counter of this
    # process's writers (…9 sorts after …10). A resume is a new process, a second later at least;
    # here, one process: each writer's file is named 10 s after the one before
    later = iter(range(int(time.time()), 2**31, 10))
    monkeypatch.setattr(event_file_writer, "time", types.SimpleNamespace(time=lambda: next(later)))
    train = mnist_small[0]
    # a fit, its resume to 2 epochs, then a resume with nothing left to train
    for epochs in (1, 2, 2):
        trainer = kit.ODC(tiny_odc_config()) if algo == "odc" else kit.DeepCluster(tiny_dc_config())
        run = kit.Run.create(tmp_path, "r", resume=True)
        tb = TensorBoardLog(tmp_path / "tb", settings=trainer.config.to_dict(), trainer=trainer)
        trainer.fit(train, epochs, callback=tb, run=run)
        tb.writer  # noqa: B018 - opened after the fit, as `compare` opens it for the Projector at every run's end
        tb.close()
    history = kit.Run(tmp_path / "r").load_history()
    ea = read(tmp_path / "tb")
    n = len(history["step"]["loss"])
    assert [e.step for e in ea.Scalars("step/loss")] == list(range(1, n + 1))
    assert [e.value for e in ea.Scalars("step/loss")] == pytest.approx(
        history["step"]["loss"], rel=1e-6
    )
    assert [e.step for e in ea.Scalars("epoch/loss")] == [n // 2, n]
