"""The command line as a careless user drives it: Ctrl-C everywhere, refused input that writes
nothing, resumes that keep a run's settings, names that stay inside --runs (issue 10)."""
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

ENV = {**os.environ, "KIT_FAST": "1", "PYTHONUNBUFFERED": "1"}


def kit(*args, cwd=None, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "kit", *map(str, args)], env=ENV, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, **kw)


def snapshot(folder: Path) -> dict:
    """Every file's bytes under `folder`, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(out, *words):
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr[-1500:]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in out.stderr, out.stderr
    assert all(w in err[0] for w in words), err[0]


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    """A finished 1-epoch comparison to be abused by refused commands."""
    root = tmp_path_factory.mktemp("runs")
    out = kit("compare", "--name", "r", "--runs", root, "--epochs", 1)
    assert out.returncode == 0, out.stderr[-2000:]
    return root


def paste(hint: str, **kw):
    """Run a printed `continue with: python -m kit ...` line as a user pasting it would."""
    cmd = shlex.split(hint.split("continue with: ", 1)[1].strip().splitlines()[0])
    assert cmd[:3] == ["python", "-m", "kit"]
    return subprocess.run([sys.executable, *cmd[1:]], env=ENV, capture_output=True, text=True, timeout=600, **kw)


# -- 1. Ctrl-C ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_with_sigint_ignored_exits_130_and_its_hint_resumes_when_pasted(tmp_path):
    """A process started in the background inherits SIGINT as ignored; kit restores Ctrl-C itself."""
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731 - what `cmd &` does
    cmd = [sys.executable, "-m", "kit", "train", "--algo", "odc", "--name", "t", "--runs", str(tmp_path), "--epochs", "3"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ignore, cwd=tmp_path)
    ckpt = tmp_path / "t" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1500:]
    assert "Traceback" not in err and "--algo odc" in err and f"--runs {tmp_path}" in err and "--epochs 3" in err
    done = paste(err, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1500:]
    from kit.runs import Run

    assert [r["epoch"] for r in Run(tmp_path / "t").load_history()["epoch"]] == [0, 1, 2]


@pytest.mark.slow
def test_ctrl_c_during_start_up_is_a_clean_exit_130(tmp_path):
    # Ctrl-C while torch's C++ extensions load used to abort the interpreter (pybind11
    # std::terminate: exit -6, or -2). The delays step through the seconds the imports take; each
    # interrupted process finishes those imports (about 4 s) before it exits.
    outcomes = []
    for i, delay in enumerate(0.2 * k for k in range(1, 9)):
        proc = subprocess.Popen([sys.executable, "-m", "kit", "compare", "--name", "s", "--runs", str(tmp_path / str(i))],
                                env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        outcomes.append((round(delay, 1), proc.returncode, "interrupted" in err and "Traceback" not in err, err[-300:]))
    assert all(rc == 130 and clean for _, rc, clean, _ in outcomes), [o for o in outcomes if o[1] != 130 or not o[2]]


# -- 2-5. refused commands write nothing -------------------------------------------------------
REFUSED = [
    (["train", "--algo", "odc", "--name", "r", "--resume"], ["`compare` run", "python -m kit compare"]),
    (["compare", "--name", "r"], ["already holds a run"]),
    (["compare", "--name", "r", "--resume", "--lr", "-1"], ["--lr"]),
    (["compare", "--name", "nothing", "--resume"], ["no run named", "drop --resume"]),
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
    (["compare", "--name", "x", "--dataset", "cifar10", "--root", "nowhere"], ["cifar10 not found"]),
    (["report", "RUNS/r/odc"], ["no config.json"]),
    (["evaluate", "RUNS/nothing"], ["no config.json"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("args,words", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_refused_command_says_why_in_one_line_and_writes_nothing(run2, args, words, tmp_path):
    before = snapshot(run2)
    args = [a.replace("RUNS", str(run2)) for a in args]
    out = kit(*args, *([] if args[0] in ("report", "evaluate") else ["--runs", run2]), cwd=tmp_path)
    one_line_error(out, *words)
    assert snapshot(run2) == before
    assert sorted(p.name for p in run2.iterdir()) == ["r"] and not list(tmp_path.iterdir())
    assert not Path("/tmp/absolute").exists() and not (run2.parent / "escaped").exists()


@pytest.mark.slow
def test_a_resume_keeps_the_saved_settings_and_lists_what_it_ignores(run2, tmp_path):
    import shutil

    shutil.copytree(run2 / "r", tmp_path / "r")
    cfg = (tmp_path / "r" / "config.json").read_text()
    out = kit("compare", "--name", "r", "--runs", tmp_path, "--resume", "--epochs", 2, "--lr", 0.3, "--n-clusters", 7)
    assert out.returncode == 0, out.stderr[-1500:]
    assert "ignored: --n-clusters 7 (the run uses 20), --lr 0.3 (the run uses each algorithm's preset)" in out.stderr
    assert (tmp_path / "r" / "config.json").read_text() == cfg.replace('"epochs": 1', '"epochs": 2')
    from kit.views.report import load_histories

    h = load_histories(tmp_path / "r")
    assert [len(h[a]["epoch"]) for a in ("deepcluster", "odc")] == [2, 2]
    assert max(h["deepcluster"]["labels"][-1]) < 20  # still K = 20


def test_a_folder_kit_did_not_write_is_never_written_into(tmp_path):
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "labels.npz").write_bytes(b"precious")
    out = kit("compare", "--name", "theirs", "--runs", tmp_path, timeout=120)
    one_line_error(out, "kit did not write")
    assert [p.name for p in (tmp_path / "theirs").iterdir()] == ["labels.npz"]
    assert (tmp_path / "theirs" / "labels.npz").read_bytes() == b"precious"


def test_report_and_evaluate_refuse_a_train_run_in_one_line(tmp_path):
    from kit.runs import Run, atomic_write_json

    run = Run.create(tmp_path, "t")
    atomic_write_json(run.file("config.json"), {"command": "train", "algo": "odc", "compare": {}})
    for cmd in ("report", "evaluate"):
        one_line_error(kit(cmd, run.path, timeout=120), "is a `train` run")


def test_evaluate_of_a_several_seed_run_names_a_seed_to_evaluate(tmp_path):
    from kit.compare import CompareConfig
    from kit.runs import Run, atomic_write_json

    run = Run.create(tmp_path, "s")
    atomic_write_json(run.file("config.json"), {"command": "compare", "algo": None,
                                                "compare": vars(CompareConfig(seeds=3, seed=7))})
    out = kit("evaluate", run.path, timeout=120)
    one_line_error(out, "holds 3 seeds", f"python -m kit evaluate {run.path / 'seed-7'}")


def test_an_unwritable_runs_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    one_line_error(kit("compare", "--name", "x", "--runs", tmp_path / "file", timeout=300), "error")


# -- the run folder's own guarantees -----------------------------------------------------------
def test_run_names_are_one_folder_name():
    from kit.runs import check_name

    for bad in ["../x", "/abs", "a/b", "", ".", "..", ".hidden", "-flag", "a\x00b"]:
        with pytest.raises(ValueError, match="not a plain folder name"):
            check_name(bad)
    assert check_name("mnist5k-20261123_1.k100") == "mnist5k-20261123_1.k100"


def test_history_is_appended_never_rewritten_and_a_torn_line_is_dropped(tmp_path):
    from kit.runs import Run

    run = Run.create(tmp_path, "h")
    h = {"algo": "odc", "epoch": [], "step": {}, "labels": [np.arange(5)]}
    for e in range(3):
        h["epoch"].append({"epoch": e, "loss": float(e)})
        h["step"].setdefault("loss", []).extend([1.0, 2.0])
        h["step"].setdefault("epoch", []).extend([e, e])
        h["labels"].append(np.arange(5) + e)
        first = {p: run.file(p).read_bytes() for p in ("epochs.jsonl", "steps.jsonl") if run.file(p).exists()}
        run.save_history(h)
        for p, b in first.items():  # what was there is a prefix of what is there now
            assert run.file(p).read_bytes().startswith(b)
    assert sorted(f.name for f in (run.path / "labels").iterdir()) == [f"{i:05d}.npy" for i in range(4)]
    back = Run(run.path).load_history()
    assert back["epoch"] == h["epoch"] and back["step"] == h["step"] and back["algo"] == "odc"
    assert all(np.array_equal(a, b) for a, b in zip(back["labels"], h["labels"]))
    with open(run.file("epochs.jsonl"), "ab") as f:
        f.write(b'{"epoch": 3, "lo')  # SIGKILL mid-append
    assert len(Run(run.path).load_history()["epoch"]) == 3


def test_stale_temporaries_are_cleaned_and_a_damaged_history_is_named(tmp_path):
    from kit.runs import Run

    run = Run.create(tmp_path, "s")
    stale = run.file(".checkpoint.pt.ab12cd34.tmp")
    stale.write_bytes(b"half")
    Run.create(tmp_path, "s", resume=True)
    assert not stale.exists()
    run.file("history.json").write_text('{"algo": "od')
    with pytest.raises(ValueError, match=r"history.json is not valid JSON"):
        run.load_history()


def test_bytes_written_per_epoch_do_not_grow_with_the_epoch(tmp_path):
    from kit.runs import Run

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
