"""fashion5k, the second dataset that ships with kit (issue 32), and torchvision's reader of the
whole Fashion-MNIST.

The rebuild and the reader read Debian's copy of the original files (`apt install
dataset-fashion-mnist`, which .ci/run does); where it is absent those two tests are skipped and say
so."""
import gzip
import hashlib
import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kit.parts.data import FASHION5K, FASHION_CLASSES, load_dataset, needs_download

REPO = Path(__file__).resolve().parents[1]
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
no_originals = pytest.mark.skipif(
    not (DEBIAN / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST's original files are not here: apt install dataset-fashion-mnist",
)


def test_fashion5k_ships_offline_balanced_with_its_class_names():
    train, test, both = (load_dataset("fashion5k", split=s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(both)) == (5000, 1000, 6000)
    assert torch.bincount(train.targets).tolist() == [500] * 10
    assert torch.bincount(test.targets).tolist() == [100] * 10
    assert train.image_shape == (1, 28, 28) and train.images.dtype == torch.uint8
    assert (
        train.classes == FASHION_CLASSES
        and train.classes[9] == "Ankle boot"
        and train.name == "fashion5k"
    )
    x, i = train[123]
    # normalised near 0
    assert i == 123 and abs(float(train.normalise(train.images.float() / 255).mean())) < 0.1
    assert torch.equal(both.images[:5000], train.images) and torch.equal(
        both.images[5000:], test.images
    )
    # no test image is a train image (by pixel hash): the claims read the test split
    digest = lambda d: {hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in d.images}  # noqa: E731
    assert not digest(train) & digest(test)


def test_the_file_is_small_and_carries_its_licence_and_how_it_was_drawn():
    assert FASHION5K == REPO / "data" / "fashion5k.npz" and FASHION5K.stat().st_size < 5e6
    licence = (REPO / "data" / "FASHION-MNIST-LICENSE").read_text()
    assert "MIT License" in licence and "Zalando SE" in licence and "make_fashion5k.py" in licence
    script = (REPO / "data" / "make_fashion5k.py").read_text()
    assert "default_rng(SEED)" in script and "PER_CLASS" in script
    # where each image came from in the original splits, kept beside it
    with np.load(FASHION5K) as f:
        assert len(np.unique(f["source_train"])) == 5000 and f["source_test"].max() < 10000


@no_originals
def test_the_rebuild_script_draws_the_same_images_from_the_original_files():
    spec = importlib.util.spec_from_file_location(
        "make_fashion5k", REPO / "data" / "make_fashion5k.py"
    )
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    rebuilt = make.build(DEBIAN)
    with np.load(FASHION5K) as f:
        assert sorted(f.files) == sorted(rebuilt)
        for key in f.files:
            assert np.array_equal(f[key], rebuilt[key]), key


@no_originals
def test_torchvision_reads_the_whole_fashion_mnist_from_its_files(tmp_path):
    assert "download=True" in needs_download(
        "fashion-mnist", tmp_path
    ) and "30 MB" in needs_download("fashion-mnist", tmp_path)
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_dataset("fashion-mnist", root=tmp_path)
    # as torchvision's download=True leaves them: the files unpacked
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in DEBIAN.glob("*-ubyte.gz"):
        with gzip.open(f) as src, open(raw / f.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    assert needs_download("fashion-mnist", tmp_path) is None
    test = load_dataset("fashion-mnist", split="test", root=tmp_path)
    assert (
        len(test) == 10000 and test.image_shape == (1, 28, 28) and test.classes == FASHION_CLASSES
    )
    assert torch.bincount(test.targets).tolist() == [1000] * 10
    # fashion5k's test images are the original test split's, unchanged
    with np.load(FASHION5K) as f:
        assert torch.equal(
            test.images[torch.from_numpy(f["source_test"])],
            load_dataset("fashion5k", "test").images,
        )
    assert len(load_dataset("fashion-mnist", root=tmp_path, n=500)) == 500


def test_a_damaged_or_foreign_file_gets_a_one_line_error(tmp_path):
    (tmp_path / "fashion5k.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not kit's fashion5k.*make_fashion5k.py") as e:
        load_dataset("fashion5k", root=tmp_path)
    assert "\n" not in str(e.value)
    np.savez(
        tmp_path / "fashion5k.npz",
        x_train=np.zeros((3, 32, 32), np.float32),
        y_train=np.zeros(3, np.int64),
        x_test=np.zeros((1, 32, 32), np.float32),
        y_test=np.zeros(1, np.int64),
    )
    with pytest.raises(ValueError, match="not kit's fashion5k"):
        load_dataset("fashion5k", root=tmp_path)


@pytest.mark.slow
def test_a_fast_compare_on_fashion5k_runs_from_the_command_line_and_names_the_clothes(
    tmp_path, capsys
):
    from kit.__main__ import main
    from kit.analysis.rundata import RunData

    # KIT_FAST preset
    assert main(["compare", "--dataset", "fashion5k", "--name", "f", "--runs", str(tmp_path)]) == 0
    run = tmp_path / "f"
    cfg = json.loads((run / "config.json").read_text())["compare"]
    assert cfg["dataset"] == "fashion5k" and cfg["n_train"] == 400
    floors = json.loads((run / "baselines.json").read_text())
    assert (
        set(floors) == {"raw_pixels_knn", "raw_pixels_nmi", "raw_pixels_ami"}
        and 0.5 < floors["raw_pixels_knn"] < 0.9
    )
    html = (run / "report.html").read_text()
    # guides say classes
    assert "kNN accuracy on raw pixels" in html and not re.search(r"\bdigits?\b", html, re.I)
    assert "Ankle boot" in html  # the flight recorder (in the page): its legend and tooltips
    data = RunData.load(run)
    assert data.class_names == FASHION_CLASSES and data.name(9) == "Ankle boot"


def _two_datasets():
    spec = importlib.util.spec_from_file_location(
        "two_datasets", REPO / "bench" / "two_datasets.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, json.loads(module.RESULT.read_text())


def test_the_two_dataset_headline_is_three_seeds_at_one_k_on_each_and_the_readme_states_it():
    two, results = _two_datasets()
    assert list(results) == ["mnist5k", "fashion5k"]
    for dataset, result in results.items():
        assert (
            result["dataset"] == dataset and result["n_clusters"] == 30 and result["epochs"] == 30
        )
        assert len(result["seeds"]) == 3 and all(len(result["per_seed"][a]) == 3 for a in two.ALGOS)
        assert len(result["curves"]) == 3 and all(
            len(c["odc"]["epoch"]) == 30 for c in result["curves"]
        )
        assert set(result["baselines"]) >= {"raw_pixels_knn", "raw_pixels_ami"}
    for page in ("README.md", "bench/two_datasets.md"):
        text = " ".join((REPO / page).read_text().split())
        assert " ".join(two.table(results).split()) in text, (
            f"{page} does not show the table bench/two_datasets.py prints"
        )
        for sentence in two.findings(results):
            assert sentence in text, f"{page} does not say: {sentence}"


def test_the_findings_follow_the_numbers():
    """Swap the two algorithms' numbers on one dataset: who leads there swaps, and the last sentence
    says the ranking changed between the datasets."""
    two, results = _two_datasets()
    before = two.findings(results)
    clothes = results["fashion5k"]
    swapped = {
        **results,
        "fashion5k": {
            **clothes,
            "per_seed": {
                "deepcluster": clothes["per_seed"]["odc"],
                "odc": clothes["per_seed"]["deepcluster"],
            },
        },
    }
    after = two.findings(swapped)
    assert after[0] == before[0] and after[1] != before[1]  # digits untouched; clothes read again

    # the algorithm a clause names first: knn, agreement, steadier labels, in that order
    def ahead(sentence, clause):
        return re.search(
            r"DeepCluster|ODC", sentence.split(". Beside raw pixels")[0].split("; ")[clause]
        ).group(0)

    flipped = {"DeepCluster": "ODC", "ODC": "DeepCluster"}
    assert [ahead(after[1], c) for c in range(3)] == [
        flipped[ahead(before[1], c)] for c in range(3)
    ]
    # clear on both: swapping one reverses it
    if all(two._versus(r, "ami_prev")[1] for r in results.values()):
        assert ("reverses" in after[2]) != ("reverses" in before[2])
