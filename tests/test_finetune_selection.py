"""The semi-supervised protocol picks each model's fine-tuning setting on a validation split carved
from the train split by default; `selection="test"` keeps the benchmark pages' way (best test
top-1). The fine-tuning is replaced by stand-ins that score each setting by a table, so no network
trains."""
import pytest
import torch

import kit
from kit.analysis import evaluate as ev
from kit.views.evaluation import markdown

# per setting (lr, head multiplier): (validation top-1, test top-1); the test split's favourite is
# not validation's
SCORES = {(0.001, 1): (60.0, 99.0), (0.01, 10): (90.0, 80.0), (0.1, 100): (70.0, 85.0)}


@pytest.fixture
def fake_finetune(monkeypatch):
    """The pages' way calls `finetune` per setting; the validation way trains with `_tuned` and
    scores with `_scores`. Each call is recorded: (train split, test split, validation split) or
    ("scored", setting, split)."""
    calls = []

    def finetune(
        backbone, train_set, test_set, fraction, lr, head_mult, steps=200, device=None, **kw
    ):
        calls.append((train_set, test_set, None))
        return ev.FinetuneResult(ev.setting_name(lr, head_mult), SCORES[(lr, head_mult)][1], 100.0)

    def tuned(backbone, train_set, fraction, lr, head_mult, *args):
        calls.append((train_set, None, None))
        return (lr, head_mult), None, 10  # the "network" is its setting

    def scores(net, head, dataset, n_classes, device, num_workers):
        calls.append(("scored", net, dataset))
        return {"top1": SCORES[net][dataset.kind], "top5": 100.0}

    monkeypatch.setattr(ev, "finetune", finetune)
    monkeypatch.setattr(ev, "_tuned", tuned)
    monkeypatch.setattr(ev, "_scores", scores)
    return calls


def splits():
    train, test = (
        kit.load_dataset("mnist5k", n=400),
        kit.load_dataset("mnist5k", split="test", n=100),
    )
    test.kind = 1  # its column of SCORES
    return train, test


def test_the_setting_is_chosen_on_validation_and_the_test_split_only_scores_it(
    fake_finetune, monkeypatch
):
    train, test = splits()
    carve = ev.validation_split

    def validation_split(*a, **kw):
        pool, val = carve(*a, **kw)
        val.kind = 0
        return pool, val

    monkeypatch.setattr(ev, "validation_split", validation_split)
    best = ev.semi_supervised(
        None, train, test, fractions=(0.1,), grid=tuple(SCORES), device="cpu"
    )[0.1]
    assert (best.setting, best.top1, best.val_top1, best.selected_on) == (
        "lr1e-2_head10",
        80.0,
        90.0,
        "validation",
    )
    trained = [c[0] for c in fake_finetune if c[0] != "scored"]
    scored = [c[1:] for c in fake_finetune if c[0] == "scored"]
    pool, val = trained[0], scored[0][1]
    # one split for every setting
    assert len(trained) == len(SCORES) and all(t is pool for t in trained)
    assert len(pool) + len(val) == len(train)  # carved from train
    assert torch.bincount(val.targets).tolist() == [len(val) // 10] * 10  # class-stratified
    # validation scores every setting
    assert [s for s, split in scored if split is val] == list(SCORES)
    # the test split, the chosen one only
    assert [s for s, split in scored if split is test] == [(0.01, 10)]


def test_the_pages_way_keeps_the_best_test_top1(fake_finetune):
    train, test = splits()
    best = ev.semi_supervised(
        None, train, test, fractions=(0.1,), grid=tuple(SCORES), selection="test"
    )[0.1]
    assert (best.setting, best.top1, best.selected_on) == ("lr1e-3_head1", 99.0, "test")
    # the whole train split, no validation
    assert all(c[0] is train and c[2] is None for c in fake_finetune)
    with pytest.raises(ValueError, match="selection='best'"):
        ev.semi_supervised(None, train, test, selection="best")


def test_the_tables_say_how_the_setting_was_chosen():
    def results(on):
        semi = {"0.01": {"setting": "lr1e-2_head10", "top1": 80.0, "top5": 99.0, "selected_on": on}}
        return {
            "DeepCluster": {
                "linear": {s: {"top1": 90.0} for s in ev.STAGES},
                "knn": {"20": 95.0},
                "svm": {"SVM": 96.0, "1": [50.0, 5.0]},
                "semi": semi,
            }
        }

    assert "chosen by top-1 on a validation split" in markdown(results("validation"))
    assert "best setting by test top-1, as the benchmark pages" in markdown(results("test"))


def test_select_on_reaches_the_evaluation_and_validation_is_the_default(
    monkeypatch, tmp_path, capsys
):
    import kit.commands.evaluate_run as er
    from kit.__main__ import main

    seen = []
    (tmp_path / "evaluation.md").write_text("tables")
    monkeypatch.setattr(er, "check_compare_run", lambda path: {})
    monkeypatch.setattr(
        er,
        "evaluate_run",
        lambda run, config, device="auto": seen.append(config) or tmp_path / "evaluation.md",
    )
    assert main(["evaluate", str(tmp_path), "--select-on", "test"]) == 0
    assert main(["evaluate", str(tmp_path)]) == 0
    assert [c.selection for c in seen] == ["test", "validation"]
