"""The environment kit runs in (issue 31, item 8): every variable kit reads is parsed by one helper
that names it, the digits cache is verified and rebuilt, `doctor` reports each case, and a memory
limit at import is named."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import kit
from kit.parts import runtime


@pytest.mark.parametrize(
    "value, on",
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("OFF", False),
        ("", False),
    ],
)
def test_kit_fast_reads_on_and_off_words(monkeypatch, value, on):
    """`KIT_FAST=false` / `no` / `off` turned fast mode on."""
    monkeypatch.setenv("KIT_FAST", value)
    assert runtime.fast_mode() is on


@pytest.mark.parametrize(
    "name, value, command",
    [
        ("KIT_FAST", "maybe", ["compare", "--name", "x"]),
        ("OMP_NUM_THREADS", "-1", ["report", "none"]),
        ("OMP_NUM_THREADS", "abc", ["report", "none"]),
        ("OMP_NUM_THREADS", "0", ["compare", "--name", "x"]),
    ],
)
def test_a_bad_variable_is_one_line_naming_it_before_anything_is_written(
    monkeypatch, capsys, tmp_path, name, value, command
):
    """`OMP_NUM_THREADS=-1` gave a traceback in every command, `abc` an error that did not name the
    variable."""
    from kit.__main__ import main

    monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: ") and f"{name}={value!r}" in err and len(err.splitlines()) == 1
    ), err
    assert torch.get_num_threads() == threads and not list(tmp_path.iterdir())


def test_kit_epochs_is_refused_naming_it(monkeypatch):
    monkeypatch.setenv("KIT_EPOCHS", "two")
    with pytest.raises(ValueError, match="KIT_EPOCHS='two' is not a whole number"):
        runtime.budget(30)


def test_openmps_nested_thread_list_is_read_as_its_outer_count(monkeypatch):
    """`OMP_NUM_THREADS=4,2` is valid OpenMP (4 threads, then 2 in nested regions): kit takes the
    4."""
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")
    assert runtime.env_int("OMP_NUM_THREADS") == 4


def test_doctor_names_each_bad_variable_and_a_read_only_runs_folder(monkeypatch, tmp_path):
    from kit.commands.machine import doctor

    for name, value in (("KIT_FAST", "maybe"), ("OMP_NUM_THREADS", "-1"), ("KIT_EPOCHS", "two")):
        monkeypatch.setenv(name, value)
    runs = tmp_path / "ro"
    runs.mkdir()
    runs.chmod(0o555)
    try:
        lines = []
        findings = doctor(runs / "runs", benchmark=False, log=lines.append)
    finally:
        runs.chmod(0o755)
    problems = "\n".join(str(f) for f in findings if f.fix)
    for name in ("KIT_FAST", "OMP_NUM_THREADS", "KIT_EPOCHS"):
        assert name in problems
    if os.geteuid() != 0:  # root writes anywhere: the check is then rightly silent
        assert "not writable" in problems
    assert lines[-1] != "no problems found"


def test_a_poisoned_digits_cache_is_rebuilt(monkeypatch, tmp_path):
    """A cache holding float images or 50 images failed every command and was never rebuilt."""
    from kit.store.files import atomic_write_npz

    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    good = kit.load_dataset("mnist5k")  # writes the cache
    zeros, y = np.zeros((5000, 1, 28, 28), np.uint8), np.arange(5000) % 10
    for poison, (x, labels) in {
        "float images": (zeros.astype(np.float32), y),
        "50 images": (zeros[:50], y[:50]),
        "labels out of range": (zeros, y + 10),
    }.items():
        atomic_write_npz(tmp_path / "mnist5k.npz", compressed=True, x=x, y=labels)
        again = kit.load_dataset("mnist5k")
        assert again.images.dtype == torch.uint8 and torch.equal(again.images, good.images), poison
        with np.load(tmp_path / "mnist5k.npz") as f:  # rebuilt, not just bypassed
            assert f["x"].dtype == np.uint8 and f["x"].shape == (5000, 1, 28, 28), poison


def test_a_memory_limit_at_import_is_named(tmp_path):
    """Under `ulimit -v` of a few GB, torch's import failed with a traceback or a mapping error and
    no hint."""
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (600 * 2**20, resource.RLIM_INFINITY))

    proc = subprocess.run(
        [sys.executable, "-m", "kit", "doctor", "--no-benchmark"],
        preexec_fn=limited,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "memory limit" in last and "ulimit -v" in last, proc.stderr[-1500:]
