"""Seeds, atomic checkpoints, exact resume and the bad-input errors of runs/."""
import os

import numpy as np
import pytest
import torch

import kit
from kit.runs import Run, atomic_write_json, load_checkpoint, save_checkpoint
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
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # the mode open() would give, not mkstemp's 0600

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
    make = (lambda: kit.DeepCluster(tiny_dc_config())) if algo == "deepcluster" else (lambda: kit.ODC(tiny_odc_config()))
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
