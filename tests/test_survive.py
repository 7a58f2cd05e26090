"""Runs that survive a shared machine (issue 19): one writer per run, torn lines healed, SIGTERM as
Ctrl-C, no writing through planted links, every file read back checked, an optional cache, hints
that point the right way. Refusals and resumes are driven in-process (`kit.__main__.main`); a writer
to be stopped, killed or sent SIGTERM runs in a real process."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import kit
from kit.__main__ import main
from kit.store.runs import LOCK, Run

ENV = {**os.environ, "KIT_FAST": "1", "PYTHONUNBUFFERED": "1"}
TRAIN = ["train", "--algo", "odc"]


def snapshot(folder: Path) -> dict:
    """Every file's bytes under `folder`, by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def assert_only_appended(before: dict, folder: Path) -> None:
    """What a resume may do to a run: append to the line files, add label snapshots, rewrite the
    header and checkpoint of the epochs it adds. Nothing else is lost or changed."""
    after = snapshot(folder)
    for path, data in before.items():
        if path.endswith(".jsonl"):
            assert after[path].startswith(data), path
        elif Path(path).name == "config.json":  # a resume to a new epoch target records the target
            old, new = json.loads(data), json.loads(after[path])
            old["compare"].pop("epochs"), new["compare"].pop("epochs")
            assert old == new
        elif Path(path).name not in ("checkpoint.pt", "history.json", "embed_features.npz", LOCK):
            assert after[path] == data, path
    assert set(before) <= set(after)


def at_rest(files: dict) -> dict:
    """A snapshot as the next writer will find it: temporaries of a killed writer removed, a torn
    last line cut off."""
    return {p: b[: b.rfind(b"\n") + 1] if p.endswith(".jsonl") else b for p, b in files.items()
            if not p.endswith(".tmp")}


def one_line(err: str, *words) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err[
        -2000:
    ]
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def start(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kit", *map(str, args)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert path.exists(), proc.communicate()[1][-2000:] if proc.poll() is not None else "timed out"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 1-epoch ODC `train` run, made in-process; tests copy it before abusing it."""
    root = tmp_path_factory.mktemp("trained")
    assert main([*TRAIN, "--name", "t", "--runs", str(root), "--epochs", "1"]) == 0
    return root / "t"


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "runs" / "t", symlinks=True)
    return tmp_path / "runs" / "t"


def resume(run: Path, epochs: int = 2) -> list[str]:
    return [
        *TRAIN,
        "--name",
        run.name,
        "--runs",
        str(run.parent),
        "--resume",
        "--epochs",
        str(epochs),
    ]


# -- 1. a torn epochs.jsonl line is healed, not glued to --------------------------------------
def test_a_resume_after_a_torn_line_cuts_it_off_and_the_run_stays_readable(run):
    with open(run / "epochs.jsonl", "ab") as f:
        f.write(b'{"epoch": 6, "loss": 2.7')  # a crash mid-append
    with open(run / "steps.jsonl", "ab") as f:
        f.write(b'{"loss": [1.0, 2')
    before = snapshot(run)
    assert main(resume(run, 2)) == 0
    assert_only_appended(at_rest(before), run)
    h = Run(run).load_history()
    assert [r["epoch"] for r in h["epoch"]] == [0, 1] and len(h["labels"]) == 3
    assert all(b"{" not in line[1:] for line in (run / "epochs.jsonl").read_bytes().splitlines())
    assert main(resume(run, 3)) == 0  # and it resumes again
    assert [r["epoch"] for r in Run(run).load_history()["epoch"]] == [0, 1, 2]


def test_appending_after_a_torn_line_drops_the_torn_line(tmp_path):
    run = Run.create(tmp_path, "h")
    h = {"algo": "odc", "epoch": [{"epoch": 0}], "step": {}, "labels": []}
    run.save_history(h)
    with open(run.file("epochs.jsonl"), "ab") as f:
        f.write(b'{"epoch": 1, "lo')
    h["epoch"].append({"epoch": 1})
    Run(run.path).save_history(h)
    assert run.file("epochs.jsonl").read_bytes() == b'{"epoch": 0}\n{"epoch": 1}\n'


# -- 2. one writer per run ----------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_pid_and_a_killed_writers_lock_is_taken_over(
    tmp_path, capsys
):
    first = start(*TRAIN, "--name", "t", "--runs", tmp_path, "--epochs", 4)
    run = tmp_path / "t"
    wait_for(run / "checkpoint.pt", first)
    # hold it still, lock in hand, so the folder's bytes can be compared
    os.kill(first.pid, signal.SIGSTOP)
    try:
        assert (run / LOCK).read_text().strip() == str(first.pid)
        before = snapshot(run)
        assert main(resume(run, 4)) == 2  # this process is the second writer
        one_line(capsys.readouterr().err, f"pid {first.pid}", "one process writes a run at a time")
        assert snapshot(run) == before
    finally:
        os.kill(first.pid, signal.SIGKILL)  # the lock file still names it: a stale lock
        first.communicate()
    assert (run / LOCK).read_text().strip() == str(first.pid)
    before = at_rest(snapshot(run))
    assert main(resume(run, 4)) == 0  # this process takes the killed one's lock over
    assert_only_appended(before, run)
    assert [r["epoch"] for r in Run(run).load_history()["epoch"]] == [0, 1, 2, 3]  # each epoch once
    assert (run / LOCK).read_bytes() == b""  # no pid at rest


HOLD = """import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("held", flush=True)
time.sleep(600)
"""


def test_a_sweep_on_a_folder_another_process_writes_is_refused(tmp_path, capsys):
    folder = Run.create(tmp_path, "s").path
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder / LOCK)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(folder)
        assert main(["sweep", "--name", "s", "--runs", str(tmp_path), "--n-clusters", "10"]) == 2
        one_line(capsys.readouterr().err, f"pid {holder.pid}")
        assert snapshot(folder) == before
    finally:
        holder.kill()
        holder.wait()


# -- 3. no writing through a planted link --------------------------------------------------------
@pytest.mark.parametrize("planted", ["labels", "epochs.jsonl", LOCK])
def test_a_symlink_planted_in_a_run_is_refused_and_nothing_is_written_through_it(
    run, tmp_path, capsys, planted
):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "x"
    if planted == "labels":
        shutil.copytree(run / "labels", target)
        shutil.rmtree(run / "labels")
    else:
        shutil.copyfile(run / planted, target) if (run / planted).exists() else target.write_bytes(
            b""
        )
        (run / planted).unlink(missing_ok=True)
    (run / planted).symlink_to(target)
    before, theirs = snapshot(run), snapshot(outside)
    assert main(resume(run)) == 2
    one_line(capsys.readouterr().err, "symbolic link", planted)
    assert snapshot(run) == before and snapshot(outside) == theirs


# -- 4. every file read back is checked ----------------------------------------------------------
def _random_bytes(run):
    (run / "labels" / "00001.npy").write_bytes(os.urandom(300))


def _huge_label(run):
    a = np.load(run / "labels" / "00001.npy")
    a[3] = 10**9
    np.save(run / "labels" / "00001.npy", a)


def _short(run):
    np.save(run / "labels" / "00001.npy", np.load(run / "labels" / "00001.npy")[:-7])


def _pickled(run):
    np.save(run / "labels" / "00001.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)


def _config_list(run):
    (run / "config.json").write_text("[1, 2]")


def _history_list(run):
    (run / "history.json").write_text('["algo"]')


DAMAGE = {
    "random bytes": (_random_bytes, "00001.npy"),
    "a label of 1e9": (_huge_label, "00001.npy"),
    "a wrong length": (_short, "00001.npy"),
    "a pickle": (_pickled, "00001.npy"),
    "config.json a list": (_config_list, "config.json"),
    "history.json a list": (_history_list, "history.json"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_is_named_in_one_line_by_every_command(run, capsys, damage):
    spoil, name = DAMAGE[damage]
    spoil(run)
    before = snapshot(run)
    commands = [resume(run)] + [
        [cmd, str(run)] for cmd in ("report", "evaluate") if name == "config.json"
    ]
    for argv in commands:
        assert main(argv) == 2
        err = one_line(capsys.readouterr().err, name)
        assert "allow_pickle" not in err
    assert snapshot(run) == before
    if name != "config.json":
        with pytest.raises(ValueError, match=name):
            Run(run).load_history()


def test_a_compare_resume_names_a_damaged_odc_file_before_deepcluster_trains(
    trained, tmp_path, capsys
):
    run = Run.create(tmp_path, "c").path  # a comparison whose ODC half is the trained run
    shutil.copytree(trained, run / "odc")
    (run / "odc" / "config.json").unlink()
    cfg = json.loads((trained / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "command": "compare", "algo": None}))
    with open(run / "odc" / "epochs.jsonl", "ab") as f:
        f.write(b'{"epoch": 1, "lo\n{"epoch": 2}\n')  # damaged mid-file: not a torn tail
    before = snapshot(run)
    argv = ["compare", "--name", "c", "--runs", str(tmp_path), "--resume", "--epochs", "2"]
    assert main(argv) == 2
    one_line(capsys.readouterr().err, "odc/epochs.jsonl", "damaged at line 2")
    assert snapshot(run) == before


def test_evaluate_refuses_a_hand_edited_setting_at_once(run, capsys):
    from kit.commands.compare import CompareConfig

    cfg = {
        "command": "compare",
        "algo": None,
        "compare": {**vars(CompareConfig()), "n_clusters": "abc"},
    }
    (run / "config.json").write_text(json.dumps(cfg))
    t0 = time.perf_counter()
    assert main(["evaluate", str(run)]) == 2
    one_line(capsys.readouterr().err, "config.json", "n_clusters='abc'")
    assert time.perf_counter() - t0 < 5


# -- 5. SIGTERM is Ctrl-C ---------------------------------------------------------------------
def test_sigterm_keeps_the_run_prints_the_hint_and_the_hint_resumes(tmp_path):
    proc = start(*TRAIN, "--name", "t", "--runs", tmp_path, "--epochs", 3, cwd=tmp_path)
    run = tmp_path / "t"
    wait_for(run / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)  # Slurm preemption, docker stop, a culled notebook server
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert (
        last.startswith("interrupted (SIGTERM): what was written") and "continue with: " in last
    ), err[-2000:]
    assert "Traceback" not in err
    before = snapshot(run)
    cmd = shlex.split(last.split("continue with: ", 1)[1])
    assert cmd[:3] == ["python", "-m", "kit"] and main(cmd[3:]) == 0  # the hint, pasted
    assert_only_appended(before, run)
    assert [r["epoch"] for r in Run(run).load_history()["epoch"]] == [0, 1, 2]


def test_main_in_process_leaves_sigterm_as_it_found_it(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    main(["report", str(tmp_path / "nothing")])
    assert signal.getsignal(signal.SIGTERM) is before


# -- 6. a read-only or missing HOME ------------------------------------------------------------
def test_a_missing_home_is_never_created_and_the_digits_still_load(tmp_path, monkeypatch):
    monkeypatch.delenv("KIT_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "nonexistent" / "x"))
    assert len(kit.load_dataset("mnist5k")) == 4000
    assert not (tmp_path / "nonexistent").exists()


def test_a_read_only_home_trains_from_the_digits_in_memory(tmp_path, monkeypatch):
    import errno

    import kit.parts.data

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".cache"))

    monkeypatch.delenv("KIT_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(kit.parts.data, "atomic_write_npz", read_only)
    assert len(kit.load_dataset("mnist5k", n=100)) == 100
    assert not list(tmp_path.iterdir())


# -- 7. hints that point the right way; an image folder checked before anything is written ---------
def _folder(root: Path, classes: dict[str, int]) -> Path:
    from PIL import Image

    for c, n in classes.items():
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8, 3), 3 * i, np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("case", ["one image", "30 images", "one class", "unreadable image"])
def test_an_image_folder_is_checked_whole_before_anything_is_written(tmp_path, capsys, case):
    folder = _folder(
        tmp_path / "images",
        {
            "one image": {"a": 1},
            "30 images": {"a": 15, "b": 15},
            "one class": {"a": 30},
            "unreadable image": {"a": 40, "b": 40},
        }[case],
    )
    if case == "unreadable image":
        (folder / "b" / "39.png").write_bytes(b"not an image")
    argv = [
        "compare",
        "--name",
        "x",
        "--runs",
        str(tmp_path / "runs"),
        "--dataset",
        "imagefolder",
        "--root",
        str(folder),
        "--n-clusters",
        "10",
    ]
    assert main(argv) == 2
    err = one_line(capsys.readouterr().err)
    assert "pca_dim" not in err and "n_clusters <=" not in err  # flags compare does not have
    assert {
        "one image": "one class",
        "30 images": "give more images",
        "one class": "two class sub-folders",
        "unreadable image": "39.png",
    }[case] in err
    assert not (tmp_path / "runs").exists()


def test_nan_images_are_named_as_bad_data_not_divergence():
    class NaNs(torch.utils.data.Dataset):
        image_shape = (1, 8, 8)

        def __len__(self):
            return 64

        def __getitem__(self, i):
            return torch.full((1, 8, 8), float("nan")), i

    with pytest.raises(ValueError, match="NaN or inf values: clean"):
        kit.ODC(kit.ODCConfig.small(n_clusters=4, min_cluster_size=1)).fit(NaNs(), epochs=1)


# -- 8. library gaps -----------------------------------------------------------------------------
@pytest.mark.parametrize("epochs", [0, -1])
def test_fit_refuses_no_epochs(mnist_small, epochs):
    with pytest.raises(ValueError, match="epochs="):
        kit.ODC(kit.ODCConfig.small()).fit(mnist_small[0], epochs=epochs)


@pytest.mark.parametrize("n", [0, -3])
def test_load_dataset_refuses_an_empty_subset(n):
    with pytest.raises(ValueError, match=f"n={n}"):
        kit.load_dataset("digits", n=n)


# -- 9. the last line after an error is the error --------------------------------------------------
def test_the_last_stderr_line_after_an_error_is_the_error_not_a_progress_bar(
    tmp_path, capsys, monkeypatch
):
    import kit.algorithms.odc

    def broken(self, dataset, callback, stop, features=None):
        raise ValueError("broken on purpose")

    monkeypatch.setattr(kit.algorithms.odc.ODC, "_epoch", broken)
    assert main([*TRAIN, "--name", "t", "--runs", str(tmp_path), "--epochs", "2"]) == 2
    import gc

    gc.collect()  # what dropping the traceback's frames does at the end of a real process
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1] == "error: broken on purpose", err[-500:]


# -- 10. no speed cliff beside other work ----------------------------------------------------------
def test_importing_kit_makes_openmp_threads_sleep_before_torch_or_faiss_load():
    """Spinning OpenMP threads took an ODC epoch from 2.45 s to 15.8 s beside a 2-thread job
    (bench/RESULTS.md). torch's and faiss's libgomp read OMP_WAIT_POLICY once, when they load: kit
    sets it first."""
    env = {k: v for k, v in ENV.items() if k != "OMP_WAIT_POLICY"}
    code = (
        "import os, sys, kit; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules, "
        "'faiss' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["PASSIVE", "False", "False"], out.stderr[-1000:]
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.split()[0] == "ACTIVE"  # the user's choice wins


def test_threads_follow_the_cpus_really_available(tmp_path, monkeypatch):
    from kit.parts.runtime import available_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # docker --cpus 1.5
    assert available_cpus(str(tmp_path / "cpu.max")) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(str(tmp_path / "cpu.max")) == 4
    assert available_cpus(str(tmp_path / "missing")) == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)  # taskset -c 3
    assert available_cpus(str(tmp_path / "missing")) == 1


def test_a_seed_folder_is_not_written_while_its_comparison_is(tmp_path):
    from kit.store.runs import RunInUse

    top = Run.create(tmp_path, "x").path
    seed = Run.create(top, "seed-31").path
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(top / LOCK)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUse, match=f"pid {holder.pid}"):
            Run(seed).lock()  # `compare --name seed-31 --runs runs/x --resume` while runs/x trains
        assert not (seed / LOCK).exists()
    finally:
        holder.kill()
        holder.wait()
    Run(seed).lock()  # free once the comparison's writer is gone
    Run(seed).unlock()
