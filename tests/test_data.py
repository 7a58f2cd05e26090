import pytest
import torch

from conftest import NO_AUGMENT

from kit.parts.augment import COLOUR, DIGITS, augment
from kit.parts.data import batches, check_indexed, load_dataset, with_indices


def test_mnist5k_ships_offline_with_a_fixed_stratified_split():
    train, test, everything = (
        load_dataset("mnist5k"),
        load_dataset("mnist5k", split="test"),
        load_dataset("mnist5k", split="all"),
    )
    assert (len(train), len(test), len(everything)) == (4000, 1000, 5000)
    assert torch.bincount(test.targets).tolist() == [100] * 10
    assert torch.bincount(train.targets).tolist() == [400] * 10
    assert train.image_shape == (1, 28, 28)
    x, i = train[17]
    assert i == 17 and x.shape == (1, 28, 28)  # yields the index, not the label
    assert torch.equal(load_dataset("mnist5k", split="test").images, test.images)  # fixed split


def test_digits_fixture_and_subset():
    d = load_dataset("digits")
    assert (
        d.image_shape == (1, 16, 16) and len(d) + len(load_dataset("digits", split="test")) == 1797
    )
    s = load_dataset("mnist5k", n=100)
    assert len(s) == 100 and torch.bincount(s.targets).tolist() == [10] * 10
    assert [s[i][1] for i in (0, 99)] == [0, 99]


def test_bad_names_and_missing_files_get_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenette'.*choose one of"):
        load_dataset("imagenette")
    with pytest.raises(FileNotFoundError, match="download=True") as e:
        load_dataset("cifar10", root=tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="no image folder"):
        load_dataset("imagefolder", root=tmp_path / "nope")


def test_imagefolder_yields_indices(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for j in range(3):
            Image.new("RGB", (40, 40), (j * 50, 0, 0)).save(tmp_path / c / f"{j}.png")
    ds = load_dataset("imagefolder", root=tmp_path, image_size=32)
    assert len(ds) == 6 and ds.targets.tolist() == [0, 0, 0, 1, 1, 1]
    x, i = ds[4]
    assert i == 4 and x.shape == (3, 32, 32)
    (xb, ib), = list(batches(ds, torch.arange(6), 6, torch.device("cpu"), train=True))
    assert xb.shape == (6, 3, 32, 32) and ib.tolist() == list(range(6))


def test_datasets_without_indices_are_refused_and_can_be_wrapped():
    labelled = torch.utils.data.TensorDataset(torch.rand(10, 1, 8, 8), torch.arange(10) % 3)
    with pytest.raises(ValueError, match="with_indices"):
        check_indexed(labelled)
    wrapped = with_indices(labelled)
    check_indexed(wrapped)
    assert wrapped[7][1] == 7


@pytest.mark.parametrize("spec,shape", [(DIGITS, (8, 1, 28, 28)), (COLOUR, (8, 3, 32, 32))])
def test_augmentation_keeps_shape_and_range_and_varies(spec, shape):
    torch.manual_seed(0)
    x = torch.rand(shape)
    a, b = augment(x, spec), augment(x, spec)
    assert a.shape == shape and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, b)  # random per call
    assert not torch.allclose(a[0], a[1] * 0 + a[0].mean())  # not constant


def test_identity_augmentation_is_identity():
    from kit.parts.augment import AugmentSpec

    spec = AugmentSpec(**NO_AUGMENT)
    x = torch.rand(4, 3, 16, 16)
    assert torch.allclose(augment(x, spec), x, atol=1e-5)


def test_flip_mirrors_the_image():
    from kit.parts.augment import AugmentSpec

    spec = AugmentSpec(**{**NO_AUGMENT, "flip": 1.0})
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(augment(x, spec), x.flip(-1), atol=1e-5)


def test_train_batches_are_augmented_and_eval_batches_are_not(mnist_small):
    train, _ = mnist_small
    dev = torch.device("cpu")
    idx = torch.arange(8)
    e1, e2 = train.batch(idx, dev, train=False), train.batch(idx, dev, train=False)
    assert torch.equal(e1, e2) and torch.allclose(e1[3], train[3][0])
    assert not torch.allclose(train.batch(idx, dev, train=True), e1)


def test_a_tensor_dataset_is_augmented_sixteen_batches_at_a_time_and_yields_every_batch_as_before(
    monkeypatch,
):
    """One augmentation call per batch was a few dozen small ops a step (issue 29); one call now
    serves up to 16 batches. The batches, their indices, their order and (without randomness) their
    images are what they were."""
    from kit.parts import data
    from kit.parts.augment import AugmentSpec

    digits = load_dataset("digits", n=300)
    # augmentation with nothing random left
    digits.spec = AugmentSpec(**NO_AUGMENT)
    calls, augment = [], data.augment
    monkeypatch.setattr(data, "augment", lambda x, spec: calls.append(len(x)) or augment(x, spec))
    cpu, order = (
        torch.device("cpu"),
        torch.randperm(len(digits), generator=torch.Generator().manual_seed(0)),
    )
    got = list(batches(digits, order, 16, cpu, train=True))
    assert [len(i) for _, i in got] == [16] * 18 + [12] and torch.equal(
        torch.cat([i for _, i in got]), order
    )
    assert calls == [256, 44]  # 19 batches in two calls
    for x, i in got:  # each image where its index says, as the batch made alone would have it
        torch.testing.assert_close(x, digits.batch(i, cpu, True), rtol=0, atol=1e-5)
    dropped = list(batches(digits, order, 16, cpu, train=False, drop_last=True))
    assert len(dropped) == 18 and all(len(i) == 16 for _, i in dropped)
    half = list(
        batches(
            digits,
            order,
            16,
            cpu,
            train=False,
            shard=lambda idx: idx[:0] if len(idx) < 16 else idx[8:],
        )
    )
    # a rank's share; the short batch skipped on every rank
    assert [len(i) for _, i in half] == [8] * 18


def test_large_images_are_augmented_one_batch_at_a_time(monkeypatch):
    """The chunk holds at most CHUNK_VALUES values: images as large as ImageNet's go one batch a
    call."""
    from kit.parts import data
    from kit.parts.data import ImageTensorDataset

    # 150,528 values an image: 64 a batch is over the cap
    images = torch.zeros(8, 3, 224, 224, dtype=torch.uint8)
    big = ImageTensorDataset(
        images, torch.zeros(8, dtype=torch.long), (0.5,) * 3, (0.25,) * 3, "big", COLOUR
    )
    calls, augment = [], data.augment
    monkeypatch.setattr(data, "augment", lambda x, spec: calls.append(len(x)) or augment(x, spec))
    monkeypatch.setattr(data, "CHUNK_VALUES", 3 * 224 * 224 * 2 * 2)  # room for two batches of two
    assert len(list(batches(big, torch.arange(8), 2, torch.device("cpu"), train=True))) == 4
    assert calls == [4, 4]


def test_an_image_folder_loader_is_made_once_and_the_train_flag_travels_with_each_index(tmp_path):
    """Loaders were made for every epoch and extraction, their workers started each time, and
    `dataset.train` was set on the main process's copy only: a persistent worker would never see it
    change."""
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(4):
            Image.new("RGB", (12, 12), (40 * i, 80, 120)).save(tmp_path / c / f"{i}.png")
    folder = load_dataset("imagefolder", root=tmp_path, image_size=8)
    cpu, order = torch.device("cpu"), torch.arange(len(folder))
    plain = [x for x, _ in batches(folder, order, 4, cpu, train=False, num_workers=1)]
    loaders = dict(folder._loaders)
    trained = [x for x, _ in batches(folder, order, 4, cpu, train=True, num_workers=1)]
    again = [x for x, _ in batches(folder, order, 4, cpu, train=False, num_workers=1)]
    # one loader, one set of workers, for all three passes
    assert folder._loaders == loaders and len(loaders) == 1
    # eval passes decode the same images
    assert all(torch.equal(a, b) for a, b in zip(plain, again))
    # the train pass was augmented in the worker
    assert not all(torch.equal(a, b) for a, b in zip(plain, trained))
    inner = batches(folder, order, 4, cpu, train=False, num_workers=1)
    next(inner)  # a pass still reading (another thread's) gets a loader of its own
    assert (
        len(list(batches(folder, order, 4, cpu, train=False, num_workers=1))) == 2
        and folder._loaders == loaders
    )
