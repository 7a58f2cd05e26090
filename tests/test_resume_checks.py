"""Runs that nothing can corrupt, round 3 (issue 31): a resume checks what it resumes, and nothing
is written before every check of a command has passed. Each test failed before its fix."""
import numpy as np
import pytest
import torch

import kit
from conftest import tiny_dc_config
from kit.store.runs import LOCK, MARKER
from kit.store.checkpoints import load_checkpoint, save_checkpoint


def _files(run) -> dict:
    return {p.relative_to(run.path).as_posix(): p.read_bytes() for p in sorted(run.path.rglob("*"))
            if p.is_file() and p.name != LOCK}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mnist_small):
    """Run `a` (2 epochs, seed 31) and run `b` (1 epoch, K = 10, seed 7)."""
    root, train = tmp_path_factory.mktemp("runs"), mnist_small[0]
    kit.DeepCluster(tiny_dc_config()).fit(train, 2, run=kit.Run.create(root, "a"))
    kit.DeepCluster(tiny_dc_config(n_clusters=10, seed=7)).fit(
        train, 1, run=kit.Run.create(root, "b")
    )
    return root, train


def _resume_refused(root, train, tmp_path, state_change, match):
    """A copy of run `a` with its checkpoint changed by `state_change`: refused in one line naming
    the checkpoint, and not one file of the run changed."""
    import shutil

    shutil.copytree(root / "a", tmp_path / "a")
    ckpt = tmp_path / "a" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    state_change(state)
    save_checkpoint(ckpt, state)
    run = kit.Run(tmp_path / "a")
    before = _files(run)
    with pytest.raises(ValueError, match=match) as e:
        kit.DeepCluster(tiny_dc_config()).fit(train, 4, run=run)
    assert str(ckpt) in str(e.value) and "\n" not in str(e.value)
    assert _files(run) == before


def test_a_checkpoint_from_another_run_is_refused_naming_what_differs(two_runs, tmp_path):
    """It was accepted: epochs 2-4 of `a` deleted and retrained at K 10 / seed 7 under a config.json
    saying seed 31."""
    root, train = two_runs
    foreign = load_checkpoint(root / "b" / "checkpoint.pt")
    _resume_refused(
        root,
        train,
        tmp_path,
        lambda s: s.update(foreign),
        r"belongs to another run: n_clusters 10 \(history.json: 20\), seed 7 \(history.json: 31\)",
    )


@pytest.mark.parametrize(
    "epoch, match",
    [
        (-2, "epoch -2, not a count"),
        ("abc", "epoch 'abc', not a count"),
        (True, "epoch True, not a count"),
        (5, "holds 2 epoch records"),
    ],
)
def test_a_checkpoint_with_an_impossible_epoch_is_refused(two_runs, tmp_path, epoch, match):
    """`epoch = -2` deleted two epochs, then trained epochs -2 to 3."""
    _resume_refused(*two_runs, tmp_path, lambda s: s.update(epoch=epoch), match)


@pytest.mark.parametrize("change, match", [(lambda s: s.update(config=5), "its config"),
                                           (lambda s: s.pop("model"), "model missing"),
                                           (lambda s: s.update(extra=[]), "its extra state")])
def test_a_damaged_checkpoint_is_refused_in_one_line(two_runs, tmp_path, change, match):
    _resume_refused(*two_runs, tmp_path, change, match)


def test_a_run_moved_to_another_machine_resumes(two_runs, tmp_path):
    """The machine's settings (device, workers) may differ from the history's: the run is the same
    run."""
    def moved(state):
        state["config"] = {**state["config"], "device": "cpu", "num_workers": 0}

    import shutil

    root, train = two_runs
    shutil.copytree(root / "a", tmp_path / "a")
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    moved(state)
    save_checkpoint(tmp_path / "a" / "checkpoint.pt", state)
    h = kit.DeepCluster(tiny_dc_config()).fit(train, 3, run=kit.Run(tmp_path / "a"))
    assert len(h["epoch"]) == 3


def test_a_seed_out_of_range_is_refused_before_the_run_is_made(tmp_path, capsys):
    """`--seed 9223372036854775808` failed in torch ("Overflow when unpacking long long") after
    config.json was written, so the name was taken and could be neither resumed nor restarted."""
    from kit.__main__ import main

    for seed in ("9223372036854775808", str(2**32)):
        assert (
            main(["train", "--algo", "odc", "--seed", seed, "--name", "s", "--runs", str(tmp_path)])
            != 0
        )
        err = capsys.readouterr().err.strip()
        assert "seed=" in err and "--seed" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "s").exists()


def test_a_folder_left_with_only_its_lock_is_taken_over(tmp_path, mnist_small):
    """A kill between taking the lock and writing the run marker left a folder holding only
    `.kit-lock`, refused with and without --resume ("holds files kit did not write")."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / LOCK).write_text("12345\n")
    run = kit.Run.create(tmp_path, "r", lock=True)
    assert (run.path / MARKER).exists()
    run.unlock()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="kit did not write"):
        kit.Run.create(tmp_path, "x", lock=True)  # anything else of a user's is still refused


# -- item 4: the library's fit after an interrupt is as exact as the CLI's -------------------------
@pytest.mark.parametrize("algo", ["deepcluster", "odc"])
@pytest.mark.parametrize("how", ["stop", "KeyboardInterrupt"])
def test_a_fit_stopped_mid_epoch_rolls_the_epoch_back_and_the_next_fit_continues_exactly(
    mnist_small, algo, how, tmp_path
):
    """A second `fit` after a KeyboardInterrupt or `stop=` kept the partial epoch's steps (17 step
    records instead of 14, a different final loss), and with `run=` steps.jsonl kept them for good.
    The partial epoch is rolled back: history, weights, optimizer, generator and ODC's memory are as
    the epoch found them."""
    import threading

    from conftest import tiny_odc_config

    train = mnist_small[0]
    make = (
        (lambda: kit.DeepCluster(tiny_dc_config()))
        if algo == "deepcluster"
        else (lambda: kit.ODC(tiny_odc_config()))
    )
    straight = make().fit(train, 2)
    trainer, stop, seen = make(), threading.Event(), []

    def interrupt(record):
        if record["kind"] == "step" and record["epoch"] == 1:
            seen.append(record)
            if len(seen) == 3:
                if how == "stop":
                    stop.set()
                else:
                    raise KeyboardInterrupt

    run = kit.Run.create(tmp_path, "r")
    try:
        h = trainer.fit(train, 2, callback=interrupt, stop=stop, run=run)
        assert how == "stop" and len(h["epoch"]) == 1
    except KeyboardInterrupt:
        assert how == "KeyboardInterrupt"
    # the first epoch's alone
    assert len(trainer.history["step"]["loss"]) == len(straight["step"]["loss"]) // 2
    again = trainer.fit(train, 2, run=run)
    assert again["step"]["loss"] == straight["step"]["loss"]
    assert again["epoch"][-1]["loss"] == straight["epoch"][-1]["loss"]
    assert all(np.array_equal(a, b) for a, b in zip(again["labels"], straight["labels"]))
    assert kit.Run(tmp_path / "r").load_history()["step"]["loss"] == straight["step"]["loss"]


# -- item 9: the smaller ones ----------------------------------------------------------------------
def test_one_image_is_told_it_needs_two_not_to_use_one_cluster():
    """One image was told "use n_clusters <= 1", which kit refuses."""
    from kit.parts.clustering import check_sizes

    with pytest.raises(ValueError, match="at least 2 images") as e:
        check_sizes(1, 2)
    assert "n_clusters <= 1" not in str(e.value)


@pytest.mark.parametrize("field, value", [("lr", -1.0), ("batch_size", 1), ("n_clusters", 1)])
def test_a_setting_changed_after_the_trainer_was_built_is_checked_when_it_fits(
    mnist_small, field, value
):
    """Batch size or lr set after construction trained to `loss=nan`."""
    trainer = kit.DeepCluster(tiny_dc_config())
    setattr(trainer.config, field, value)
    with pytest.raises(ValueError, match=f"{field}={value!r} is out of range"):
        trainer.fit(mnist_small[0], 1)


def test_two_fits_at_once_in_one_process_are_warned(mnist_small):
    """Two trainers in two threads with one seed differ from a sequential run (one global torch
    generator), silently."""
    import threading

    inside, leave = threading.Event(), threading.Event()

    def hold(record):
        inside.set()
        leave.wait(30)

    other = threading.Thread(
        target=lambda: kit.DeepCluster(tiny_dc_config()).fit(mnist_small[0], 1, callback=hold)
    )
    other.start()
    try:
        assert inside.wait(60)
        with pytest.warns(RuntimeWarning, match="another kit fit is running in this process"):
            # the warning comes first; stopped at its first record
            with pytest.raises(ValueError, match="stop here"):
                kit.DeepCluster(tiny_dc_config()).fit(
                    mnist_small[0],
                    1,
                    callback=lambda r: (_ for _ in ()).throw(ValueError("stop here")),
                )
    finally:
        leave.set()
        other.join()


def test_a_killed_reports_temporaries_are_cleaned_by_the_next(fast_compare, tmp_path):
    """A killed `report` left `*.tmp` files that later reports never cleaned."""
    import shutil

    from kit.__main__ import main

    shutil.copytree(fast_compare.path, tmp_path / "t")
    left = [
        tmp_path / "t" / ".report.html.abcd1234.tmp",
        tmp_path / "t" / "odc" / ".history.json.efgh5678.tmp",
    ]
    for f in left:
        f.write_text("half")
    assert main(["report", str(tmp_path / "t")]) == 0
    assert not any(f.exists() for f in left)


@pytest.mark.parametrize("algo", ["deepcluster", "odc"])
def test_a_nan_image_is_named_as_the_data_not_a_diverged_network(algo):
    """A NaN in an image `check_indexed` does not sample was called "the network has diverged"."""
    from conftest import tiny_odc_config
    from kit.parts.data import with_indices

    x = torch.rand(200, 1, 28, 28)
    x[7, 0, 3, 3] = float("nan")  # check_indexed looks at images 0, 100 and 199
    data = with_indices(torch.utils.data.TensorDataset(x, torch.arange(200) % 10))
    trainer = kit.DeepCluster(tiny_dc_config(n_clusters=10)) if algo == "deepcluster" else \
        kit.ODC(tiny_odc_config(n_clusters=10))
    with pytest.raises(
        FloatingPointError,
        match="so in the data, not the network: an image of the dataset holds NaN",
    ):
        trainer.fit(data, 1)


def test_a_sweep_cells_result_without_its_algorithm_is_one_line(tmp_path):
    """A sweep cell's result.json without `algo` gave a traceback."""
    from kit.commands.sweep import Cell, SweepConfig, train_cell

    cfg = SweepConfig.fast()
    cell = Cell("odc", (("n_clusters", 10),), 31)
    (tmp_path / cell.name).mkdir(parents=True)
    (tmp_path / cell.name / "result.json").write_text('{"epochs": 2}')
    with pytest.raises(ValueError, match="result.json: algo is None") as e:
        train_cell(kit.Run(tmp_path), cfg, cell, None, None)
    assert str(tmp_path / cell.name / "result.json") in str(e.value)


def test_a_checkpoint_with_a_damaged_random_state_is_one_line(two_runs, tmp_path):
    _resume_refused(
        *two_runs,
        tmp_path,
        lambda s: s.update(rng={"torch": torch.zeros(3)}),
        "random-number state",
    )


@pytest.mark.parametrize(
    "images, match",
    [
        (
            torch.randint(0, 255, (50, 1, 28, 28), dtype=torch.uint8),
            "is torch.uint8: the network takes float images",
        ),
        (torch.rand(50, 28, 28), r"has shape \(28, 28\), not \(C, H, W\)"),
    ],
)
def test_images_of_the_wrong_type_or_shape_are_one_line(images, match):
    """uint8 images or images without a channel axis raised torch's own errors from inside the
    network."""
    from kit.parts.data import with_indices

    data = with_indices(torch.utils.data.TensorDataset(images, torch.arange(50) % 10))
    with pytest.raises(ValueError, match=match):
        kit.DeepCluster(tiny_dc_config(n_clusters=10)).fit(data, 1)


def test_an_image_tensor_dataset_of_the_wrong_kind_is_one_line():
    from kit.parts.augment import AugmentSpec
    from kit.parts.data import ImageTensorDataset

    with pytest.raises(
        ValueError, match=r"are torch.float32 \(10, 28, 28\): an ImageTensorDataset holds uint8"
    ):
        ImageTensorDataset(torch.rand(10, 28, 28), None, (0.5,), (0.5,), "x", AugmentSpec())


def test_a_writer_threads_full_disk_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    """On a full disk with --tensorboard, the one-line error was followed by TensorBoard's writer
    thread's traceback."""
    import threading

    import kit.__main__ as cli

    def full(a, name):
        writer = threading.Thread(
            target=lambda: (_ for _ in ()).throw(OSError(28, "No space left on device"))
        )
        writer.start()
        writer.join()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "_train_or_compare", full)
    assert cli.main(["compare", "--name", "d", "--runs", str(tmp_path), "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: [Errno 28] No space left on device (in a background writer)",
                   "error: [Errno 28] No space left on device"], err
    assert threading.excepthook is not cli._thread_error  # given back
