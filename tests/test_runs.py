"""Seeds, atomic checkpoints, exact resume and the bad-input errors of runs/."""
import os

import numpy as np
import pytest
import torch

import kit
from kit.store.runs import Run
from kit.store.files import atomic_write_json
from kit.store.checkpoints import load_checkpoint, save_checkpoint
from conftest import tiny_dc_config, tiny_odc_config


def test_same_seed_same_numbers_on_cpu(mnist_small):
    train, _ = mnist_small
    a = kit.DeepCluster(tiny_dc_config()).fit(train, epochs=2)
    b = kit.DeepCluster(tiny_dc_config()).fit(train, epochs=2)
    assert a["step"]["loss"] == b["step"]["loss"]
    assert np.array_equal(a["labels"][1], b["labels"][1])
    c = kit.DeepCluster(tiny_dc_config(seed=7)).fit(train, epochs=1)
    assert c["step"]["loss"] != a["step"]["loss"][: len(c["step"]["loss"])]


def test_checkpoints_are_atomic_and_refuse_corrupt_or_foreign_files(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"x": torch.arange(3)})
    assert torch.equal(load_checkpoint(path)["x"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    # the mode open() would give, not mkstemp's 0600
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask

    path.write_bytes(path.read_bytes()[:50])  # truncated
    with pytest.raises(ValueError, match="corrupt or unreadable.*delete it"):
        load_checkpoint(path)
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a kit checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "h.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    assert path.read_text().strip().startswith("{") and '"v": 1' in path.read_text()
    assert len(list(tmp_path.iterdir())) == 1


def test_an_existing_run_is_never_overwritten(tmp_path):
    run = Run.create(tmp_path, "a")
    atomic_write_json(run.file("history.json"), {"epoch": []})
    with pytest.raises(FileExistsError, match="already holds a run.*resume"):
        Run.create(tmp_path, "a")
    assert Run.create(tmp_path, "a", resume=True).path == run.path


@pytest.mark.parametrize("algo", ["deepcluster", "odc"])
def test_resume_continues_exactly_as_if_never_stopped(mnist_small, tmp_path, algo):
    train, _ = mnist_small
    make = (
        (lambda: kit.DeepCluster(tiny_dc_config()))
        if algo == "deepcluster"
        else (lambda: kit.ODC(tiny_odc_config()))
    )
    straight = make().fit(train, epochs=3)

    run = Run.create(tmp_path, algo)
    make().fit(train, epochs=2, run=run)  # "interrupted" after two epochs
    resumed_trainer = make()
    resumed = resumed_trainer.fit(train, epochs=3, run=Run.create(tmp_path, algo, resume=True))
    assert resumed_trainer.epoch == 3
    assert resumed["step"]["loss"] == straight["step"]["loss"]
    assert len(resumed["labels"]) == len(straight["labels"])
    assert all(np.array_equal(a, b) for a, b in zip(resumed["labels"], straight["labels"]))
    saved = Run(tmp_path / algo).load_history()
    assert len(saved["epoch"]) == 3 and saved["epoch"][-1]["loss"] == straight["epoch"][-1]["loss"]


def test_resuming_with_the_wrong_algorithm_says_so(mnist_small, tmp_path):
    train, _ = mnist_small
    run = Run.create(tmp_path, "r")
    kit.DeepCluster(tiny_dc_config()).fit(train, epochs=1, run=run)
    with pytest.raises(ValueError, match="holds a deepcluster run"):
        kit.ODC(tiny_odc_config()).fit(train, epochs=2, run=run)


def test_device_auto_and_bad_device():
    assert kit.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device"):
        kit.resolve_device("tpu9")


def test_a_resume_with_missing_label_snapshots_is_refused(mnist_small, tmp_path):
    import shutil

    train, _ = mnist_small
    for algo, make in (
        ("deepcluster", lambda: kit.DeepCluster(tiny_dc_config())),
        ("odc", lambda: kit.ODC(tiny_odc_config())),
    ):
        run = Run.create(tmp_path, algo)
        make().fit(train, epochs=1, run=run)
        shutil.rmtree(run.path / "labels")
        with pytest.raises(
            ValueError, match="history stops before its checkpoint.*label snapshots"
        ):
            make().fit(train, epochs=2, run=run)


def test_a_history_longer_than_its_checkpoint_is_cut_back_on_resume(mnist_small, tmp_path):
    train, _ = mnist_small
    run = Run.create(tmp_path, "odc")
    kit.ODC(tiny_odc_config()).fit(train, epochs=1, run=run)
    ckpt = run.file("checkpoint.pt").read_bytes()
    kit.ODC(tiny_odc_config()).fit(train, epochs=2, run=Run(run.path))
    # as if killed after the history, before the checkpoint
    run.file("checkpoint.pt").write_bytes(ckpt)
    straight = kit.ODC(tiny_odc_config()).fit(train, epochs=2)
    resumed = kit.ODC(tiny_odc_config()).fit(train, epochs=2, run=Run(run.path))
    assert resumed["step"]["loss"] == straight["step"]["loss"]
    saved = Run(run.path).load_history()
    assert [r["epoch"] for r in saved["epoch"]] == [0, 1] and len(saved["labels"]) == 3


def test_the_epoch_callback_runs_before_the_checkpoint(mnist_small, tmp_path):
    """So a Ctrl-C after the checkpoint never loses what the callback saves (the UMAP features)."""
    train, _ = mnist_small
    run = Run.create(tmp_path, "dc")
    seen = []
    kit.DeepCluster(tiny_dc_config()).fit(
        train,
        epochs=2,
        run=run,
        callback=lambda r: (
            r["kind"] == "epoch"
            and seen.append(
                run.file("checkpoint.pt").exists()
                and load_checkpoint(run.file("checkpoint.pt"))["epoch"]
            )
        ),
    )
    # at epoch 0's callback no checkpoint yet; at epoch 1's, still epoch 0's (1 done)
    assert seen == [False, 1]


def test_a_damaged_mnist_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    (tmp_path / "mnist5k.npz").write_bytes(b"PK\x03\x04 truncated")
    ds = kit.load_dataset("mnist5k")
    assert len(ds) == 4000 and np.load(tmp_path / "mnist5k.npz")["x"].shape == (5000, 1, 28, 28)


def test_image_folders_name_a_corrupt_file_and_have_no_pixel_baseline(tmp_path):
    from PIL import Image

    from kit.commands.compare import baselines

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    (tmp_path / "b" / "2.png").write_bytes(b"not an image")
    ds = kit.load_dataset("imagefolder", root=tmp_path, image_size=16)
    assert ds[0][0].shape == (3, 16, 16) and ds[0][1] == 0
    with pytest.raises(ValueError, match=r"cannot read image .*b/2.png.*remove or replace"):
        ds[5]
    sub = ds.select(torch.tensor([0, 4]))
    assert len(sub) == 2 and sub.targets.tolist() == [0, 1] and sub[1][1] == 1
    assert baselines(ds, ds) == {}


def test_evaluate_refuses_the_other_algorithms_checkpoint(tmp_path):
    from kit.commands.evaluate_run import load_backbone

    train = kit.load_dataset("digits")
    (tmp_path / "odc").mkdir()
    save_checkpoint(
        tmp_path / "odc" / "checkpoint.pt", {"algo": "deepcluster", "config": {}, "model": {}}
    )
    with pytest.raises(ValueError, match="holds a deepcluster checkpoint, not odc"):
        load_backbone(tmp_path, "odc", train)


def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, monkeypatch, capsys):
    import errno

    from kit.__main__ import main

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    assert main(["compare", "--name", "x", "--runs", str(tmp_path), "--dataset", "digits"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
