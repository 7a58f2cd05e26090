"""The benchmark-page protocols on tiny cases, each with an assertion on its result."""
import pytest
import torch

from kit.analysis import evaluate as ev
from kit.parts.models import build_backbone


def _split(n_train=300, n_test=200, d=20, c=4):
    """Linearly separable classes (well-spread centres, small noise), one draw split in two."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(c, d, generator=g) * 4
    y = torch.arange(n_train + n_test) % c
    x = centres[y] + 0.3 * torch.randn(len(y), d, generator=g)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_linear_probe_reaches_100_percent_on_separable_features():
    xtr, ytr, xte, yte = _split()
    r = ev.linear_probe([xtr] * 6, ytr, [xte] * 6, yte, epochs=20)
    assert set(r) == set(ev.STAGES)
    assert all(v["top1"] > 99 for v in r.values())
    assert "top5" not in r["AvgPool"]  # 4 classes: top-5 is meaningless


def test_svm_knn_and_low_shot():
    xtr, ytr, xte, yte = _split(400, 200)
    svm = ev.svm_table(xtr, ytr, xte, yte, ks=(1, 4), draws=3)
    assert svm["SVM"] > 99 and svm[4][0] > 90 and len(svm[1]) == 2
    knn = ev.knn_table(xtr, ytr, xte, yte)
    assert list(knn) == [10, 20, 100, 200] and knn[10] > 99


def test_low_shot_k1_draws_exactly_one_sample_per_class():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 7)
    for seed in range(3):
        idx = ev.low_shot_indices(y, 1, seed)
        assert sorted(y[idx].tolist()) == [0, 1, 2]
    assert torch.bincount(y[ev.low_shot_indices(y, 10, 0)]).tolist() == [10, 10, 7]
    # draws differ
    assert not torch.equal(ev.low_shot_indices(y, 5, 0), ev.low_shot_indices(y, 5, 1))


def test_the_finetuning_grid_is_the_pages():
    assert len(ev.FINETUNE_GRID) == 9
    assert {lr for lr, _ in ev.FINETUNE_GRID} == {0.001, 0.01, 0.1}
    assert {m for _, m in ev.FINETUNE_GRID} == {1, 10, 100}
    assert (
        ev.setting_name(0.01, 10) == "lr1e-2_head10"
        and ev.setting_name(0.1, 100) == "lr1e-1_head100"
    )


def test_stage_features_pool_every_stage_to_a_fixed_size(mnist_small):
    train, _ = mnist_small
    bb = build_backbone("convnet", 1)
    f = ev.stage_features(bb, train.select(torch.arange(20)), stage_dim=512)
    assert len(f) == 6 and all(x.shape[0] == 20 for x in f)
    # stem 32 ch at 28 px -> side 4 (512 dims); last stage 256 ch at 4 px -> side 1; AvgPool 256
    assert [x.shape[1] for x in f] == [32 * 16, 32 * 16, 64 * 9, 128 * 4, 256, 256]
    # the reference's ~9k dims
    assert ev.pool_size(2048, 7, 9216) == 2 and ev.pool_size(64, 56, 9216) == 12


def test_finetune_learns_from_few_labels(mnist_small):
    train, test = mnist_small
    r = ev.finetune(
        build_backbone("convnet", 1), train, test, fraction=0.25, lr=0.01, head_mult=10, steps=50
    )
    assert r.setting == "lr1e-2_head10" and r.top1 > 40 and r.top5 >= r.top1  # chance is 10%


@pytest.mark.parametrize("arch,size", [("resnet18", 32), ("resnet50", 64)])
def test_exported_weights_load_into_torchvision_and_give_the_same_features(arch, size):
    import torchvision

    torch.manual_seed(0)
    bb = build_backbone(arch, 3, image_size=size).eval()
    sd = ev.export_torchvision(bb)
    tv = getattr(torchvision.models, arch)(weights=None)
    if arch == "resnet18":  # the CIFAR stem, as kit builds it
        tv.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        tv.maxpool = torch.nn.Identity()
    missing, unexpected = tv.load_state_dict(sd, strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected
    tv.fc = torch.nn.Identity()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(tv.eval()(x), bb(x), atol=1e-5)
    with pytest.raises(ValueError, match="only ResNet"):
        ev.export_torchvision(build_backbone("convnet", 1))


@pytest.mark.slow
def test_evaluate_command_writes_the_tables(fast_compare, tmp_path, monkeypatch):
    import shutil

    from kit.__main__ import main

    shutil.copytree(fast_compare.path, tmp_path / "e")  # the session's finished KIT_FAST comparison
    drawn = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "e").glob("*.png")}
    assert main(["evaluate", str(tmp_path / "e")]) == 0
    # the page gains the tables around the figures as they were: none is drawn again
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "e").glob("*.png")} == drawn and len(
        drawn
    ) >= 10
    md = (tmp_path / "e" / "evaluation.md").read_text()
    for header in ("Feature1", "AvgPool", "k=200", "SVM", "k=96", "1% top-1", "10% setting"):
        assert header in md
    for model in ("random init", "DeepCluster", "ODC", "supervised"):
        assert f"| {model} |" in md
    assert "Evaluation protocols" in (tmp_path / "e" / "report.html").read_text()
    # the page was rewritten: a `compare` reopening the run finds its report current
    import os

    import kit.commands.evaluate_run as er
    from kit.commands.report import is_current

    run = tmp_path / "e"
    assert is_current(run)
    # evaluate_run itself, as notebook 04 calls it (the evaluation stood in for: it writes the same
    # tables again): a current page gains the tables; a page older than the run is left as it is
    # and the line says how to redraw it
    tables = {f: (run / f).read_bytes() for f in ("evaluation.json", "evaluation.md")}

    def again(run_path, *_):
        for f, b in tables.items():
            (run_path / f).write_bytes(b)
        return run_path / "evaluation.md"

    monkeypatch.setattr(er, "_evaluate", again)
    said = []
    er.evaluate_run(run, er.EvaluateConfig.fast(), log=said.append)
    assert is_current(run) and said[-1].startswith("the tables added to")
    drawn = (run / "report.html").stat().st_mtime_ns
    later = drawn + 10**9  # as if `compare --resume` had trained an epoch since
    os.utime(run / "odc" / "history.json", ns=(later, later))
    er.evaluate_run(run, er.EvaluateConfig.fast(), log=said.append)
    assert "is older than the run or missing: python -m kit report" in said[-1]
    assert (run / "report.html").stat().st_mtime_ns == drawn and not is_current(run)
    # issue 31, item 3: it records the weights it scored, and a report after more training says the
    # tables are old
    import json

    from kit.commands.report import build_report

    scored = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    epochs = len((tmp_path / "e" / "odc" / "epochs.jsonl").read_text().splitlines())
    assert scored["DeepCluster"]["weights"]["epoch"] == scored["ODC"]["weights"]["epoch"] == epochs
    # current: nothing to say
    assert "evaluated" not in (tmp_path / "e" / "report.html").read_text()
    # as if `compare --resume --epochs` had trained on since
    scored["ODC"]["weights"]["epoch"] = epochs - 1
    (tmp_path / "e" / "evaluation.json").write_text(json.dumps(scored))
    page = build_report(tmp_path / "e", log=lambda *_: None, umap=False, figures=False).read_text()
    assert f"ODC's after epoch {epochs - 1}; the run has since trained to epoch {epochs}" in page


def test_evaluate_waits_for_no_writer_it_takes_the_runs_lock(fast_compare, tmp_path, capsys):
    """`evaluate` took no lock, so it could score a run while `compare --resume` was training it."""
    import shutil
    import subprocess
    import sys

    from kit.__main__ import main

    shutil.copytree(fast_compare.path, tmp_path / "e")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from kit.store.runs import Run; "
            f"Run({str(tmp_path / 'e')!r}).lock(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["evaluate", str(tmp_path / "e")]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert (
        "being written by another kit process" in err
        and not (tmp_path / "e" / "evaluation.json").exists()
    )
