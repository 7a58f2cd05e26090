"""`kit.doctor()` (issue 23): what this machine will do with kit, one line each, on this CPU and on
reported cards."""
import math

import pytest
import torch

import kit
from fake_cuda import FakeCuda
from kit.commands import machine


def lines(**kw) -> dict[str, machine.Finding]:
    return {f.topic: f for f in machine.report(benchmark=False, **kw)}


def test_the_report_on_this_machine(tmp_path):
    # a runs folder not made yet: its nearest parent is measured
    found = lines(runs_root=tmp_path / "runs")
    assert list(found)[:3] == ["python", "device", "threads"]
    assert torch.__version__ in found["python"].text
    assert found["device"].text.startswith("cpu") and "float32" in found["device"].text
    assert found["threads"].text.startswith(f"{torch.get_num_threads()} torch thread")
    for topic in (
        "faiss-cpu",
        "umap-learn",
        "mlxtend",
        "tensorboard",
        "chromium",
        "disk",
        "data",
        "example",
    ):
        assert topic in found, topic
    assert str(tmp_path) in found["disk"].text
    assert found["faiss-cpu"].text == "present" and found["faiss-cpu"].fix is None
    printed = []
    kit.doctor(runs_root=tmp_path, benchmark=False, log=printed.append)
    assert printed[-1].endswith("found") and all("\n" not in p or "->" in p for p in printed)


@pytest.mark.parametrize("capability, name, words", [
    ((7, 5), "Tesla T4", "sm_75; training in fp16 autocast with a loss scaler"),
    ((9, 0), "NVIDIA H100", "sm_90; training in bf16 autocast"),
])
def test_the_report_on_a_reported_card(capability, name, words):
    with FakeCuda(capability=capability):
        text = lines()["device"].text
    assert text.startswith("cuda:0") and name in text and words in text


def test_problems_name_what_to_do(monkeypatch, tmp_path):
    real = machine.importlib.util.find_spec
    monkeypatch.setattr(
        machine.importlib.util, "find_spec", lambda m: None if m == "faiss" else real(m)
    )
    monkeypatch.setattr(machine, "available_cpus", lambda: 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(machine.shutil, "disk_usage", lambda p: type("u", (), {"free": 2**29})())
    found = lines(runs_root=tmp_path)
    assert "pip install faiss-cpu" in found["faiss-cpu"].fix
    assert "OMP_NUM_THREADS=1" in found["threads"].fix
    assert "0.5 GiB" in found["disk"].text and found["disk"].fix
    assert str(found["threads"]).startswith("PROBLEM")


def test_the_micro_benchmark_and_the_demo_estimate():
    b = machine.micro_benchmark(torch.device("cpu"), steps=2)
    assert 0 < b["step_s"] < 5 and 0 < b["image_s"] < 0.1
    # 2 algorithms x 30 epochs x (63 steps + 5,000 images), x the fitted factor, + the fixed part
    expected = machine.DEMO_FACTOR * 60 * (63 * 0.05 + 5000 * 1e-4) + machine.DEMO_FIXED
    assert math.isclose(machine.expected_demo_seconds({"step_s": 0.05, "image_s": 1e-4}), expected)


def test_python_m_kit_doctor_prints_the_report(capsys, tmp_path):
    from kit.__main__ import main

    assert main(["doctor", "--no-benchmark", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0].split()[1] == "python"
        and any(" device " in line for line in out)
        and out[-1].endswith("found")
    )


def test_the_data_lines_say_where_each_dataset_is(monkeypatch, tmp_path):
    found = lines(runs_root=tmp_path)
    assert found["fashion5k"].text.endswith("present") and found["fashion5k"].fix is None
    assert found["example"].text.endswith("present") and found["example"].fix is None
    # a kit installed without its repository
    monkeypatch.setattr(kit.parts.data, "FASHION5K", tmp_path / "gone.npz")
    gone = lines(runs_root=tmp_path)["fashion5k"]
    assert "missing" in gone.text and "gone.npz" in gone.text and "make_fashion5k.py" in gone.fix
