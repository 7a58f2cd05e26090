"""The command line as a careless user drives it: Ctrl-C everywhere, refused input that writes
nothing, names that stay inside --runs (issue 10); a resume that keeps a run's settings is
tests/test_compare.py's.

Refusals run in this process against `kit.__main__.main(argv)`, on a run folder made by hand; one
refusal runs in a real process for the exit status, and Ctrl-C is sent to real processes."""
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kit.__main__ import main
from kit.commands.report import load_histories

ENV = {**os.environ, "KIT_FAST": "1", "PYTHONUNBUFFERED": "1"}
IGNORE_SIGINT = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731 - what `cmd &` does


def snapshot(folder: Path) -> dict:
    """Every file's bytes under `folder`, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(argv, capsys) -> str:
    """`python -m kit *argv`, in this process: a refusal (exit 2) in one `error:` line and no
    traceback. Returns the line."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err[-1500:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def made(tmp_path):
    """A runs folder holding `r`, a finished 1-epoch `compare` made by hand (no training): its
    config.json and, for each algorithm, a history and a label snapshot."""
    from kit.commands.compare import CompareConfig
    from kit.store.runs import Run
    from kit.store.files import atomic_write_json

    root = tmp_path / "runs"
    run = Run.create(root, "r")
    atomic_write_json(
        run.file("config.json"),
        {
            "command": "compare",
            "algo": None,
            "compare": vars(CompareConfig(epochs=1, n_clusters=20, n_train=400)),
        },
    )
    for algo in ("deepcluster", "odc"):
        Run.create(run.path, algo, resume=True).save_history(
            {
                "algo": algo,
                "epoch": [{"epoch": 0, "loss": 3.0}],
                "step": {"loss": [3.0], "epoch": [0]},
                "labels": [np.arange(400) % 20],
            }
        )
    return root


# -- 1. Ctrl-C ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_mid_compare_exits_130_keeps_the_finished_epoch_and_its_pasted_hint_finishes(
    tmp_path, monkeypatch
):
    """Ctrl-C in the middle of DeepCluster's second epoch. The process is started as `cmd &` starts
    it, with SIGINT ignored: kit restores Ctrl-C itself."""
    cmd = [
        sys.executable,
        "-m",
        "kit",
        "compare",
        "--name",
        "i",
        "--runs",
        str(tmp_path),
        "--epochs",
        "2",
    ]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=IGNORE_SIGINT, cwd=tmp_path)
    ckpt = tmp_path / "i" / "deepcluster" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1500:]
    assert (
        "Traceback" not in err
        and "--name i" in err
        and f"--runs {tmp_path}" in err
        and "--epochs 2" in err
    )
    # Ctrl-C came before the second ended
    assert len(load_histories(tmp_path / "i")["deepcluster"]["epoch"]) == 1
    hint = shlex.split(err.split("continue with: ", 1)[1].strip().splitlines()[0])
    assert hint[:3] == ["python", "-m", "kit"] and "--resume" in hint
    monkeypatch.chdir(tmp_path)  # where the user pastes it
    assert main(hint[3:]) == 0
    h = load_histories(tmp_path / "i")
    assert [[r["epoch"] for r in h[a]["epoch"]] for a in ("deepcluster", "odc")] == [[0, 1], [0, 1]]
    assert (tmp_path / "i" / "report.html").exists()


# the shared libraries whose mapping marks a moment of torch's import: it has begun (OpenMP, loaded
# first), its C++ libraries are initialising (where a KeyboardInterrupt used to abort the
# interpreter), numpy loads
START_UP = ("libgomp", "libtorch_cpu.so", "numpy/_core")


@pytest.mark.slow
def test_ctrl_c_during_start_up_is_a_clean_exit_130(tmp_path):
    """Ctrl-C while torch's C++ extensions load used to abort the interpreter (pybind11
    std::terminate: exit -6, or -2). One process per moment of torch's import in START_UP, all
    started at once: each is sent Ctrl-C as soon as its /proc/<pid>/maps shows that library, so the
    signal lands inside the import whatever the machine's speed; each finishes the import (seconds)
    before it exits."""
    procs = {
        lib: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kit",
                "compare",
                "--name",
                "s",
                "--runs",
                str(tmp_path / str(i)),
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=IGNORE_SIGINT,
        )
        for i, lib in enumerate(START_UP)
    }
    pending, seen, deadline = dict(procs), set(), time.time() + 120
    while pending:
        for lib, proc in list(pending.items()):
            try:
                loaded = lib in Path(f"/proc/{proc.pid}/maps").read_text()
            except OSError:  # it has exited already
                loaded = False
            if loaded or proc.poll() is not None or time.time() > deadline:
                seen.update([lib] if loaded else [])
                proc.send_signal(signal.SIGINT)
                del pending[lib]
        time.sleep(0.001)
    outcomes = {}
    for lib, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        outcomes[lib] = (
            proc.returncode,
            "interrupted" in err and "Traceback" not in err,
            err[-300:],
        )
    assert seen == set(START_UP), f"interrupted before {set(START_UP) - seen} loaded: {outcomes}"
    assert all(rc == 130 and clean for rc, clean, _ in outcomes.values()), outcomes


# -- 2-5. refused commands write nothing -------------------------------------------------------
REFUSED = [  # each with the words that say which check refused it
    (["train", "--algo", "odc", "--name", "r", "--resume"], ["`compare` run"]),
    (["compare", "--name", "r"], ["already holds a run"]),
    (["compare", "--name", "r", "--resume", "--lr", "-1"], ["--lr"]),
    (["compare", "--name", "nothing", "--resume"], ["no run named"]),
    (["compare", "--name", "../escaped"], ["not a plain folder name"]),
    (["compare", "--name", "/tmp/absolute"], ["not a plain folder name"]),
    (["compare", "--name", "x", "--epochs", "0"], ["--epochs"]),
    (["compare", "--name", "x", "--epochs", "-3"], ["--epochs"]),
    (["compare", "--name", "x", "--n-train", "0"], ["--n-train"]),
    (["compare", "--name", "x", "--n-train", "-5"], ["--n-train"]),
    (["compare", "--name", "x", "--n-clusters", "5000"], ["5000 clusters"]),
    (["compare", "--name", "x", "--batch-size", "0"], ["--batch-size"]),
    (["compare", "--name", "x", "--batch-size", "1"], ["--batch-size"]),
    (["compare", "--name", "x", "--lr", "nan"], ["--lr"]),
    (["compare", "--name", "x", "--device", "meta"], ["cannot train"]),
    (["compare", "--name", "x", "--device", "mps"], ["no Apple GPU"]),
    (
        ["compare", "--name", "x", "--dataset", "cifar10", "--root", "nowhere"],
        ["cifar10 not found"],
    ),
    (["report", "RUNS/r/odc"], ["no config.json"]),
    (["evaluate", "RUNS/nothing"], ["no config.json"]),
]


@pytest.mark.parametrize("args,words", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_refused_command_says_why_in_one_line_and_writes_nothing(
    made, args, words, tmp_path, capsys, monkeypatch
):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # nothing lands here either
    before = snapshot(made)
    args = [a.replace("RUNS", str(made)) for a in args]
    line = refused(
        [*args, *([] if args[0] in ("report", "evaluate") else ["--runs", made])], capsys
    )
    assert all(w in line for w in words), line
    assert snapshot(made) == before
    assert sorted(p.name for p in made.iterdir()) == ["r"] and not list(
        (tmp_path / "cwd").iterdir()
    )
    assert not Path("/tmp/absolute").exists() and not (made.parent / "escaped").exists()


def test_a_refusal_in_a_real_process_exits_2_with_one_line(tmp_path):
    """The exit status a shell or a scheduler sees: the in-process refusals above return it from
    `main`."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kit",
            "compare",
            "--name",
            "../escaped",
            "--runs",
            str(tmp_path / "runs"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr[-1500:]
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a plain folder name" in err[0], (
        out.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_folder_kit_did_not_write_is_never_written_into(tmp_path, capsys):
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "labels.npz").write_bytes(b"precious")
    assert "kit did not write" in refused(
        ["compare", "--name", "theirs", "--runs", tmp_path], capsys
    )
    assert [p.name for p in (tmp_path / "theirs").iterdir()] == ["labels.npz"]
    assert (tmp_path / "theirs" / "labels.npz").read_bytes() == b"precious"


def test_report_and_evaluate_refuse_a_train_run_in_one_line(tmp_path, capsys):
    from kit.store.runs import Run
    from kit.store.files import atomic_write_json

    run = Run.create(tmp_path, "t")
    atomic_write_json(run.file("config.json"), {"command": "train", "algo": "odc", "compare": {}})
    before = snapshot(run.path)
    for cmd in ("report", "evaluate"):
        assert "is a `train` run" in refused([cmd, run.path], capsys)
    assert snapshot(run.path) == before


def test_an_unwritable_runs_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    refused(["compare", "--name", "x", "--runs", tmp_path / "file"], capsys)
    assert (tmp_path / "file").read_text() == "not a folder"


# -- the run folder's own guarantees -----------------------------------------------------------
def test_run_names_are_one_folder_name():
    from kit.store.runs import check_name

    for bad in ["../x", "/abs", "a/b", "", ".", "..", ".hidden", "-flag", "a\x00b"]:
        with pytest.raises(ValueError, match="not a plain folder name"):
            check_name(bad)
    assert check_name("mnist5k-20261123_1.k100") == "mnist5k-20261123_1.k100"


def test_history_is_appended_never_rewritten_and_a_torn_line_is_dropped(tmp_path):
    from kit.store.runs import Run

    run = Run.create(tmp_path, "h")
    h = {"algo": "odc", "epoch": [], "step": {}, "labels": [np.arange(5)]}
    for e in range(3):
        h["epoch"].append({"epoch": e, "loss": float(e)})
        h["step"].setdefault("loss", []).extend([1.0, 2.0])
        h["step"].setdefault("epoch", []).extend([e, e])
        h["labels"].append(np.arange(5) + e)
        first = {
            p: run.file(p).read_bytes()
            for p in ("epochs.jsonl", "steps.jsonl")
            if run.file(p).exists()
        }
        run.save_history(h)
        for p, b in first.items():  # what was there is a prefix of what is there now
            assert run.file(p).read_bytes().startswith(b)
    assert sorted(f.name for f in (run.path / "labels").iterdir()) == [
        f"{i:05d}.npy" for i in range(4)
    ]
    back = Run(run.path).load_history()
    assert back["epoch"] == h["epoch"] and back["step"] == h["step"] and back["algo"] == "odc"
    assert all(np.array_equal(a, b) for a, b in zip(back["labels"], h["labels"]))
    with open(run.file("epochs.jsonl"), "ab") as f:
        f.write(b'{"epoch": 3, "lo')  # SIGKILL mid-append
    assert len(Run(run.path).load_history()["epoch"]) == 3


def test_stale_temporaries_are_cleaned_and_a_damaged_history_is_named(tmp_path):
    from kit.store.runs import Run

    run = Run.create(tmp_path, "s")
    stale = run.file(".checkpoint.pt.ab12cd34.tmp")
    stale.write_bytes(b"half")
    Run.create(tmp_path, "s", resume=True)
    assert not stale.exists()
    run.file("history.json").write_text('{"algo": "od')
    with pytest.raises(ValueError, match=r"history.json is not valid JSON"):
        run.load_history()


def test_bytes_written_per_epoch_do_not_grow_with_the_epoch(tmp_path):
    from kit.store.runs import Run

    run = Run.create(tmp_path, "b")
    n = 100_000
    h = {"algo": "odc", "epoch": [], "step": {"loss": [], "epoch": []}, "labels": []}
    written = []
    for e in range(12):
        before = sum(f.stat().st_size for f in run.path.rglob("*") if f.is_file())
        h["epoch"].append({"epoch": e, "loss": 1.0})
        h["step"]["loss"] += [1.0] * 50
        h["step"]["epoch"] += [e] * 50
        h["labels"].append(np.random.default_rng(e).integers(0, 1000, n))
        run.save_history(h)
        written.append(sum(f.stat().st_size for f in run.path.rglob("*") if f.is_file()) - before)
    assert max(written[1:]) - min(written[1:]) < 100  # the same few hundred KB each epoch
