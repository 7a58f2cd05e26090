"""Wording checks: the few places where the words are the promise.

A refused command is a behaviour, tested where the behaviour lives (exit 2, one `error:` line,
nothing written: tests/test_cli.py, tests/test_survive.py, tests/test_sweep.py). What is pinned here
is what the line tells the user to do next, and what a newcomer reads first: the README's first
screen and the lessons' classroom apparatus. Everything else may be reworded freely.
"""
import json

import nbformat
import pytest
import torch

import kit
from conftest import NOTEBOOKS, ROOT, SWITCH
from kit.__main__ import main
from kit.store.runs import Run
from kit.store.files import atomic_write_json


def error_line(argv, capsys) -> str:
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# -- a refusal names the command that works --------------------------------------------------------
def test_wording_a_refused_resume_names_the_command_that_works(tmp_path, capsys):
    from kit.commands.compare import CompareConfig

    run = Run.create(tmp_path, "r")
    atomic_write_json(
        run.file("config.json"),
        {"command": "compare", "algo": None, "compare": vars(CompareConfig())},
    )
    line = error_line(
        ["train", "--algo", "odc", "--name", "r", "--runs", tmp_path, "--resume"], capsys
    )
    assert "`compare` run" in line and "python -m kit compare" in line
    assert "drop --resume" in error_line(
        ["compare", "--name", "nothing", "--runs", tmp_path, "--resume"], capsys
    )


def test_wording_evaluate_of_a_several_seed_run_names_a_seed_to_evaluate(tmp_path, capsys):
    from kit.commands.compare import CompareConfig

    run = Run.create(tmp_path, "s")
    atomic_write_json(run.file("config.json"), {"command": "compare", "algo": None,
                                                "compare": vars(CompareConfig(seeds=3, seed=7))})
    line = error_line(["evaluate", run.path], capsys)
    assert "holds 3 seeds" in line and f"python -m kit evaluate {run.path / 'seed-7'}" in line


def test_wording_evaluate_on_a_sweep_folder_points_at_the_sweeps_table(tmp_path, capsys):
    run = Run.create(tmp_path, "s")
    (run.path / "config.json").write_text(
        json.dumps({"command": "sweep", "algo": None, "sweep": {}})
    )
    line = error_line(["evaluate", run.path], capsys)
    assert "`sweep` run" in line and "sweep.md" in line and "`train`" not in line


def test_wording_too_few_images_for_k_names_the_flag_and_at_least_two():
    from kit.parts.clustering import check_sizes

    with pytest.raises(ValueError, match="at least 20 train images") as e:
        check_sizes(1, 20, who="odc")
    assert "n-clusters" not in str(e.value) and "<= 1" not in str(e.value)
    with pytest.raises(ValueError, match="--n-clusters from 2 to 5"):
        check_sizes(5, 20, who="odc")
    with pytest.raises(ValueError, match="100 PCA dims.*or --pca-dim 50 or less"):
        check_sizes(50, 20, 100, who="deepcluster", pca_flag="--pca-dim")
    # the library's words, no flag
    with pytest.raises(ValueError, match="5 samples cannot form 20 clusters"):
        check_sizes(5, 20)


def test_wording_a_plain_dataset_without_image_shape_is_told_how_to_wrap_it():
    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            return torch.rand(1, 8, 8), i

    with pytest.raises(ValueError, match=r"no image_shape.*kit.parts.data.with_indices"):
        kit.ODC(kit.ODCConfig.small(n_clusters=4)).fit(Plain(), epochs=1)


def test_wording_without_tensorboard_the_switch_names_the_extra_in_one_line(monkeypatch):
    import builtins

    from kit.views import tensorboard_log

    real = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("tensorboard") or name == "torch.utils.tensorboard":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(
        ImportError,
        match=(
            r"pip install tensorboard \(or, in kit's folder, "
            r"pip install -e '\.\[tensorboard\]'\)"
        ),
    ) as e:
        tensorboard_log.check_available()
    assert "\n" not in str(e.value)


# -- what a newcomer reads first ------------------------------------------------------------------
def test_wording_the_readme_first_screen():
    """Install and the two commands before any library code, the papers and their code, the way to a
    GPU."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    top = readme.split("\n## What it shows", 1)[0]  # before the first section about results
    for needed in ("make demo", "make test", ".venv/bin/jupyter lab notebooks/", "Python 3.11"):
        assert needed in top, f"the README's top part does not mention {needed!r}"
    assert top.index("make demo") < top.index("```python"), (
        "install and run first, then the library"
    )
    for url in (
        "https://arxiv.org/abs/1807.05520",
        "https://arxiv.org/abs/2006.10645",
        "https://github.com/facebookresearch/deepcluster",
        "https://github.com/open-mmlab/OpenSelfSup",
    ):
        assert f"]({url})" in top, f"the README's top part does not link {url}"
    assert "Colab" in top and "--device cuda" in top and "(#scale-up)" in top


# the notebooks with the classroom apparatus: Colab badge and cell, example-run switch, guides,
# takeaway
CLASSROOM = ["01_quickstart.ipynb", "02_deepcluster_walkthrough.ipynb", "03_odc_walkthrough.ipynb",
             "04_stability.ipynb", "05_churn.ipynb", "07_gpu_cifar10.ipynb"]
WALKTHROUGHS = [
    "02_deepcluster_walkthrough.ipynb",
    "03_odc_walkthrough.ipynb",
    "04_stability.ipynb",
    "05_churn.ipynb",
]


def cells(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4).cells


def test_wording_the_classroom_apparatus():
    """Colab badge and install cell, the example-run switch, a guide under every figure, a
    takeaway."""
    for name in CLASSROOM:
        nb = cells(name)
        # the first: the badge once REPO is set, Colab's install
        code = [c for c in nb if c.cell_type == "code"]
        assert "colab.research.google.com/github/" in code[0].source and name in code[0].source, (
            name
        )
        assert '"google.colab" in sys.modules' in code[0].source and "pip" in code[0].source, name
        params = [c for c in nb if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and SWITCH in params[0].source.splitlines(), name
        takeaway = max(
            i
            for i, c in enumerate(nb)
            if c.cell_type == "markdown" and c.source.startswith("## Takeaway")
        )
        # a figure's guide may follow its folded answer (lesson.Answer)
        for i, c in enumerate(nb[:takeaway]):
            if (
                c.cell_type == "code"
                and c is not code[0]
                and "lesson.Answer(" not in c.source
                and any(
                    k in c.source
                    for k in ("plots.show(", "display(Image(", "flight_recorder(", "Markdown(")
                )
            ):
                after = next(d.source for d in nb[i + 1:] if d.cell_type == "markdown")
                assert "How to read" in after, (
                    f"{name}: no reading guide after the cell {c.source[:60]!r}"
                )
        # the takeaway closes the notebook: typed, or formatted by the code cells under its heading
        assert all(c.cell_type == "code" for c in nb[takeaway + 1:]), name


def test_wording_answers_are_folded_with_their_code_hidden():
    """A cell that formats a folded answer (`lesson.Answer(...)`) is tagged `answer` and its code
    hidden: JupyterLab shows the closed answer, the site its text, never the f-string behind it."""
    for name in CLASSROOM:
        for c in cells(name):
            if c.cell_type == "code" and "lesson.Answer(" in c.source:
                assert "answer" in c.metadata.get("tags", []), (
                    f"{name}: an answer cell is not tagged: {c.source[:60]!r}"
                )
                assert c.metadata.get("jupyter", {}).get("source_hidden"), (
                    f"{name}: an answer cell shows its code"
                )


def test_wording_walkthroughs_ask_before_they_show():
    """3-7 Predict prompts, each answered in a folded block (a <details> cell, or
    `lesson.Answer(...)` formatted from the run on the page) after the code cell that shows it."""
    for name in WALKTHROUGHS:
        nb = cells(name)
        prompts = [
            i for i, c in enumerate(nb) if c.cell_type == "markdown" and "**Predict" in c.source
        ]
        n_prompts = sum(nb[i].source.count("**Predict") for i in prompts)
        assert 3 <= n_prompts <= 7, f"{name}: {n_prompts} prompts"
        for i in prompts:
            shown = next(j for j in range(i + 1, len(nb)) if nb[j].cell_type == "code")
            answer = next(j for j in range(shown + 1, len(nb)) if "<details>" in nb[j].source
                          or (nb[j].cell_type == "code" and "lesson.Answer(" in nb[j].source))
            assert "**Predict" not in "".join(nb[k].source for k in range(i + 1, answer)), (
                f"{name}: prompt {i} unanswered"
            )
