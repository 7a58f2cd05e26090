import pytest
import torch

from kit.augment import COLOUR, DIGITS, augment
from kit.data import batches, check_indexed, load_dataset, with_indices


def test_mnist5k_ships_offline_with_a_fixed_stratified_split():
    train, test, everything = load_dataset("mnist5k"), load_dataset("mnist5k", split="test"), load_dataset("mnist5k", split="all")
    assert (len(train), len(test), len(everything)) == (4000, 1000, 5000)
    assert torch.bincount(test.targets).tolist() == [100] * 10
    assert torch.bincount(train.targets).tolist() == [400] * 10
    assert train.image_shape == (1, 28, 28)
    x, i = train[17]
    assert i == 17 and x.shape == (1, 28, 28)  # yields the index, not the label
    assert torch.equal(load_dataset("mnist5k", split="test").images, test.images)  # fixed split


def test_digits_fixture_and_subset():
    d = load_dataset("digits")
    assert d.image_shape == (1, 16, 16) and len(d) + len(load_dataset("digits", split="test")) == 1797
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
    from kit.augment import AugmentSpec

    spec = AugmentSpec(scale=(1, 1), ratio=(1, 1), flip=0, rotate=0, brightness=0, contrast=0, saturation=0, hue=0, grayscale=0)
    x = torch.rand(4, 3, 16, 16)
    assert torch.allclose(augment(x, spec), x, atol=1e-5)


def test_flip_mirrors_the_image():
    from kit.augment import AugmentSpec

    spec = AugmentSpec(scale=(1, 1), ratio=(1, 1), flip=1.0, rotate=0, brightness=0, contrast=0, saturation=0, hue=0, grayscale=0)
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(augment(x, spec), x.flip(-1), atol=1e-5)


def test_train_batches_are_augmented_and_eval_batches_are_not(mnist_small):
    train, _ = mnist_small
    dev = torch.device("cpu")
    idx = torch.arange(8)
    e1, e2 = train.batch(idx, dev, train=False), train.batch(idx, dev, train=False)
    assert torch.equal(e1, e2) and torch.allclose(e1[3], train[3][0])
    assert not torch.allclose(train.batch(idx, dev, train=True), e1)
