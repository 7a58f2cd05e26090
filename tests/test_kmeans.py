"""k-means on torch against faiss (ALGORITHMS.md §1.4), and the preprocessing's fidelity to faiss
(§1.3)."""
import numpy as np
import pytest
import torch

from kit.parts.clustering import (
    KMeans,
    TorchKMeans,
    _split_empty,
    l2_normalize,
    preprocess_features,
)
from kit.parts.metrics import nmi
from kit.algorithms.training import Diverged


def _mixture(n=3000, d=16, k=20, seed=0):
    """Overlapping Gaussian clusters: Lloyd's iterations have work to do, so the paths can
    diverge."""
    g = np.random.default_rng(seed)
    centres = g.normal(size=(k, d)) * 2
    y = g.integers(k, size=n)
    x = (centres[y] + g.normal(size=(n, d))).astype(np.float32)
    # features, true labels, K distinct rows as the init
    return x, y, x[g.choice(n, k, replace=False)]


def _blobs(n_per=200, k=4, d=8, seed=0):
    g = np.random.default_rng(seed)
    centres = g.normal(size=(k, d)) * 3
    x = np.concatenate([c + 0.05 * g.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


@pytest.mark.parametrize("spherical", [False, True])
def test_torch_matches_faiss_from_the_same_initial_centroids(spherical):
    x, _, init = _mixture()
    if spherical:
        x = l2_normalize(x)
    ours = KMeans(20, 20, init_centroids=init, spherical=spherical, backend="torch").fit(x)
    ref = KMeans(20, 20, init_centroids=init, spherical=spherical, backend="faiss").fit(x)
    assert (ours.backend_, ref.backend_) == ("torch", "faiss")
    assert nmi(ours.labels_, ref.labels_) >= 0.99
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=0.01)
    # the same iterations, one by one
    assert ours.objective_ == pytest.approx(ref.objective_, rel=0.01)
    assert ours.labels_.dtype == np.int64 and ours.centroids_.dtype == np.float32
    assert ours.centroids_.shape == (20, 16) and isinstance(ours.inertia_, float)
    if spherical:
        assert np.allclose(np.linalg.norm(ours.centroids_, axis=1), 1, atol=1e-5)


def test_planted_empty_clusters_are_split_as_faiss_splits_them():
    x, _ = _blobs()  # 4 tight blobs, 800 distinct points: enough to fill K = 8
    far = np.full((4, 8), 1000, np.float32)  # 4 initial centroids no point will ever choose
    init = np.concatenate([x[[0, 200, 400, 600]], far])
    ours = TorchKMeans(8, 20, init_centroids=init).fit(x)
    ref = KMeans(8, 20, init_centroids=init, backend="faiss").fit(x)
    # all four far centroids repaired in the first iteration
    assert ours.n_splits_ == ref.n_splits_ == 4
    assert ours.n_empty_ == 0 and (np.bincount(ours.labels_, minlength=8) > 0).all()
    assert np.abs(ours.centroids_).max() < 100  # nothing left out at the planted spot
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=0.01)


def test_split_rule_draws_donors_in_proportion_to_size_minus_one_and_halves_them():
    f64 = dict(dtype=torch.float64)
    by_size, after_halving = [], []
    for seed in range(500):
        g = torch.Generator().manual_seed(seed)
        c = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
        assert _split_empty(c, torch.tensor([0.0, 3.0, 9.0], **f64), g) == 1
        by_size.append(bool(c[0, 0] > 3))  # the donor was cluster 2: odds (9 - 1) : (3 - 1)
        c = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
        assert _split_empty(c, torch.tensor([0.0, 0.0, 5.0, 1.0], **f64), g) == 2
        # a singleton never gives (weight size - 1 = 0)
        assert torch.equal(c[3], torch.tensor([5.0, 5.0]))
        # the first split left 2.5 + 2.5 members to clusters 0 and 2, so the second draws either at
        # even odds; from 0 (itself a copy nudged by 1 + 1/1024) its first coordinate is nudged
        # twice
        after_halving.append(bool(c[1, 0] > 1 + 1 / 1024))
    assert np.mean(by_size) == pytest.approx(0.8, abs=0.05)
    assert np.mean(after_halving) == pytest.approx(0.5, abs=0.07)


def test_split_rule_matches_faiss_perturbation_exactly():
    c = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    _split_empty(c, torch.tensor([0.0, 5.0], dtype=torch.float64), torch.Generator().manual_seed(0))
    # faiss: even coordinates of the new centroid x (1 + EPS), odd x (1 - EPS); the donor opposite
    e = 1 / 1024
    assert torch.allclose(c[0], torch.tensor([1 + e, 2 * (1 - e), 3 * (1 + e)]))
    assert torch.allclose(c[1], torch.tensor([1 - e, 2 * (1 + e), 3 * (1 - e)]))


def test_blobs_are_recovered_and_labels_are_the_nearest_final_centroid():
    x, y = _blobs(k=3, d=32)
    # restarts, as the faiss test: one init can merge two blobs
    km = TorchKMeans(3, 20, seed=1, n_init=20).fit(x)
    assert nmi(km.labels_, y) > 0.99
    d = ((x[:, None] - km.centroids_[None]) ** 2).sum(-1)
    assert np.array_equal(km.labels_, d.argmin(1))
    assert km.inertia_ == pytest.approx(d.min(1).sum(), rel=1e-3)
    # converged: the last step moved nothing
    assert km.objective_[-1] == pytest.approx(km.inertia_, rel=1e-3)


def test_seed_repeats_and_matters():
    x = np.random.default_rng(0).normal(size=(2000, 16)).astype(np.float32)  # no real clusters
    a, b, c = (TorchKMeans(20, seed=s).fit(x) for s in (1, 1, 2))
    assert np.array_equal(a.labels_, b.labels_) and np.array_equal(a.centroids_, b.centroids_)
    assert nmi(a.labels_, c.labels_) < 0.999


def test_chunked_assignment_equals_one_block():
    x, _, init = _mixture(n=1000, k=30)
    whole = TorchKMeans(30, 10, init_centroids=init, chunk_bytes=2**30).fit(x)
    # 7 rows per block
    tiny = TorchKMeans(30, 10, init_centroids=init, chunk_bytes=4 * 30 * 7).fit(x)
    assert np.array_equal(whole.labels_, tiny.labels_)
    assert np.allclose(whole.centroids_, tiny.centroids_, atol=1e-5)
    assert tiny.inertia_ == pytest.approx(whole.inertia_, rel=1e-6)


def test_auto_backend_follows_the_data_and_bad_settings_are_refused():
    x, _, init = _mixture(n=500, k=5)
    assert KMeans(5, 5, seed=0).fit(x).backend_ == "faiss"
    assert KMeans(5, 5, seed=0).fit(torch.from_numpy(x)).backend_ == "faiss"  # a CPU tensor: faiss
    with pytest.raises(ValueError, match="backend"):
        KMeans(5, backend="sklearn").fit(x)
    with pytest.raises(ValueError, match="n_init"):
        KMeans(5, n_init=3, init_centroids=init[:5]).fit(x)
    bad = torch.from_numpy(x).clone()
    bad[7, 1] = float("nan")
    with pytest.raises(Diverged, match="row 7"):  # NaN features: the network diverged
        TorchKMeans(5).fit(bad)
    with pytest.raises(ValueError, match="cannot form 600 clusters"):
        TorchKMeans(600).fit(x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensor_is_clustered_on_the_gpu_as_on_the_cpu():
    x, _, init = _mixture()
    gpu = KMeans(20, 20, init_centroids=init).fit(torch.from_numpy(x).cuda())
    cpu = KMeans(20, 20, init_centroids=init, backend="faiss").fit(x)
    assert gpu.backend_ == "torch" and nmi(gpu.labels_, cpu.labels_) >= 0.99
    assert gpu.inertia_ == pytest.approx(cpu.inertia_, rel=0.01)


# §1.3: PCA as the reference fits it ---------------------------------------------------------------
def test_pca_is_fitted_on_faiss_default_sample_as_the_reference():
    """Above 1000 rows per input dimension faiss's PCAMatrix fits on a fixed sample; the reference
    (`preprocess_features` in deepcluster/OpenSelfSup) leaves that default, and so does kit."""
    import faiss

    g = np.random.default_rng(0)
    # 6000 > 1000 x 4
    x = (g.normal(size=(6000, 4)) @ g.normal(size=(4, 4)) * [1, 2, 3, 4]).astype(np.float32)
    ref = faiss.PCAMatrix(4, 3, -0.5)  # as deepcluster's preprocess_features
    ref.train(x)
    expected = l2_normalize(ref.apply(x))
    assert np.allclose(preprocess_features(x, 3), expected, atol=1e-5)
