"""ALGORITHMS.md §5, DeepCluster checklist items 1-11, 22, 23, with real values."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import kit
from kit.parts import metrics
from kit.parts.clustering import KMeans, check_sizes, pca_whiten, preprocess_features
from kit.parts.sampling import uniform_cluster_indices
from kit.algorithms.training import Diverged, build_network, build_optimizer, reset_head
from conftest import tiny_dc_config


def _blobs(n_per=200, k=5, d=32, seed=0, spread=0.05):
    g = np.random.default_rng(seed)
    centres = g.normal(size=(k, d)) * 3
    x = np.concatenate([c + spread * g.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


# 1-2: extraction ---------------------------------------------------------------------------------
def test_extraction_is_ordered_repeatable_and_is_the_pooled_backbone_feature(mnist_small):
    train, _ = mnist_small
    net = build_network(tiny_dc_config(), train, neck=False)
    net.train()
    a = kit.extract_features(net, train, batch_size=64)
    b = kit.extract_features(net, train, batch_size=37)  # other batch boundaries, same rows
    assert a.dtype == np.float32 and a.shape == (400, net.backbone.feature_dim)
    assert np.allclose(a, b, atol=1e-5)
    assert net.training  # mode restored
    net.eval()
    with torch.no_grad():
        row = net.backbone(train[123][0][None])[0].numpy()
        logits = net(train[123][0][None])[1][0]
    assert np.allclose(a[123], row, atol=1e-5)  # row i is item i, the pooled feature
    assert logits.shape[0] == 20 != a.shape[1]  # not the logits


# 3: preprocessing -----------------------------------------------------------------------------
def test_pca_whitening_gives_identity_covariance_then_unit_rows():
    g = np.random.default_rng(0)
    x = (g.normal(size=(3000, 48)) @ g.normal(size=(48, 48)) * np.linspace(0.1, 5, 48)).astype(
        np.float32
    )
    w = pca_whiten(x, 16)
    assert w.shape == (3000, 16)
    cov = np.cov(w, rowvar=False)
    assert np.abs(cov - np.eye(16)).max() < 0.02
    y = preprocess_features(x, 16)
    assert np.abs(np.linalg.norm(y, axis=1) - 1).max() < 1e-5
    assert preprocess_features(x, -1).shape == (3000, 48)  # -1 skips PCA


def test_nan_features_and_small_data_are_refused_in_one_line():
    x = np.ones((300, 8), np.float32)
    x[5, 2] = np.nan
    with pytest.raises(Diverged, match="NaN.*row 5"):
        preprocess_features(x, 4)
    with pytest.raises(ValueError, match="100 samples cannot form 200 clusters"):
        check_sizes(100, 200)
    with pytest.raises(ValueError, match="PCA to 256 dims needs at least 256 samples"):
        check_sizes(100, 10, 256)
    with pytest.raises(ValueError, match="exceeds the feature dimension"):
        pca_whiten(np.random.rand(300, 8).astype(np.float32), 16)


def test_trainer_refuses_more_clusters_than_samples(mnist_small):
    train, _ = mnist_small
    with pytest.raises(ValueError, match="cannot form 1000 clusters"):
        kit.DeepCluster(tiny_dc_config(n_clusters=1000)).fit(train, epochs=1)


# 4: k-means -----------------------------------------------------------------------------------
def test_kmeans_recovers_separated_blobs_and_follows_the_estimator_contract():
    x, y = _blobs(k=3)
    one = [metrics.nmi(KMeans(3, seed=s).fit(x).labels_, y) for s in range(8)]
    # one random-init run can merge two blobs (plain Lloyd, as the reference)
    assert min(one) < 0.99
    # P(no restart seeds every blob) = 0.78^20 < 1%
    km = KMeans(3, n_iter=20, seed=1, n_init=20).fit(x)
    assert km.labels_.shape == (600,) and km.centroids_.shape == (3, 32)
    assert metrics.nmi(km.labels_, y) > 0.99
    d = ((x[:, None] - km.centroids_[None]) ** 2).sum(-1)
    assert np.array_equal(km.labels_, d.argmin(1))  # labels = nearest final centroid
    assert km.inertia_ == pytest.approx(d.min(1).sum(), rel=1e-3)


def test_kmeans_seed_matters_and_is_repeatable():
    x = np.random.default_rng(0).normal(size=(2000, 16)).astype(np.float32)  # no real clusters
    a, b, c = (KMeans(20, seed=s).fit(x).labels_ for s in (1, 1, 2))
    assert np.array_equal(a, b)
    assert metrics.nmi(a, c) < 0.999


def test_kmeans_uses_every_point():
    """With faiss's default (256 points per centroid) this 30k x 2-cluster run would subsample."""
    x, _ = _blobs(n_per=15000, k=2, d=4)
    km = KMeans(2, seed=0).fit(x)
    assert np.bincount(km.labels_).tolist() == [15000, 15000]


# 5-6: empty clusters and the uniform sampler ---------------------------------------------------
def test_empty_clusters_are_counted_and_skipped_never_crash():
    x = np.repeat(np.eye(4, dtype=np.float32), 50, axis=0)  # only 4 distinct points, K = 8
    km = KMeans(8, seed=0).fit(x)
    assert km.n_empty_ >= 4 and len(np.unique(km.labels_)) == 4
    idx = uniform_cluster_indices(
        torch.from_numpy(km.labels_), 200, torch.Generator().manual_seed(0)
    )
    assert len(idx) == 200 and set(np.unique(km.labels_[idx.numpy()])) == set(np.unique(km.labels_))


def test_uniform_sampler_is_flat_over_nonempty_clusters_and_pairs_images_with_their_own_labels():
    g = torch.Generator().manual_seed(0)
    sizes = [700, 200, 60, 25, 10, 4, 1, 0, 0]  # a Zipf-like assignment with two empty clusters
    labels = torch.cat([torch.full((s,), k) for k, s in enumerate(sizes)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    n = len(labels)
    idx = uniform_cluster_indices(labels, n, g)
    assert len(idx) == n  # M = N exactly
    drawn = torch.bincount(labels[idx], minlength=len(sizes))  # looked up by dataset index
    s = n // 7 + 1
    assert drawn[7] == drawn[8] == 0
    assert (drawn[:7] <= s).all() and (drawn[:7] >= s - 7).all()  # flat up to the truncation
    cv = drawn[:7].float().std() / drawn[:7].float().mean()
    assert cv < 0.02  # the original's position-indexing gave CV ≈ 2.2 on a similar Zipf case
    big = idx[labels[idx] == 0]
    assert len(torch.unique(big)) == len(big)  # > s members: drawn without replacement


# 7: head reset -----------------------------------------------------------------------------
def test_head_reset_after_clustering_keeps_body_momentum_and_drops_head_state(mnist_small):
    train, _ = mnist_small
    net = build_network(tiny_dc_config(), train, neck=False)
    opt = build_optimizer(net, tiny_dc_config())
    x = train.batch(torch.arange(32), torch.device("cpu"), train=True)
    torch.nn.functional.cross_entropy(net(x)[1], torch.randint(20, (32,))).backward()
    opt.step()
    w_before = net.head.weight.detach().clone()
    body_buf = opt.state[net.backbone.stem[0].weight]["momentum_buffer"].clone()
    reset_head(net, opt)
    assert not torch.equal(w_before, net.head.weight)
    assert (
        abs(net.head.weight.std().item() - 0.01) < 2e-3 and torch.count_nonzero(net.head.bias) == 0
    )
    assert all(p not in opt.state for p in net.head.parameters())
    assert torch.equal(opt.state[net.backbone.stem[0].weight]["momentum_buffer"], body_buf)
    assert opt.param_groups[1]["momentum"] == 0.0 and opt.param_groups[0]["momentum"] == 0.9


def test_aligned_head_keeps_the_head_and_renumbers_new_clusters_onto_the_last_ones(
    mnist_small, monkeypatch
):
    """kit's ablation (notebook 05): the head is drawn once and kept, and each new cluster takes the
    id of the previous clustering's cluster it overlaps most, so output j goes on meaning mostly the
    same images."""
    train, _ = mnist_small
    resets = {}
    for head in ("reset", "aligned"):
        dc = kit.DeepCluster(tiny_dc_config(head=head))
        calls = []
        monkeypatch.setattr(
            dc, "reset_head", lambda dc=dc, calls=calls: (calls.append(1), type(dc).reset_head(dc))
        )
        dc.fit(train, epochs=3)
        resets[head] = len(calls)
        if head == "aligned":
            for t in (1, 2):
                prev, cur = dc.history["labels"][t - 1], dc.history["labels"][t]
                # already matched: keeping the ids is an optimal matching
                c = metrics.contingency(cur, prev, 20, 20)
                assert np.trace(c) == c[linear_sum_assignment(-c)].sum()
                assert metrics.label_change(prev, cur) == pytest.approx(float((prev != cur).mean()))
    # the reference draws a head every epoch; the ablation once
    assert resets == {"reset": 3, "aligned": 1}
    with pytest.raises(ValueError, match="head='kept'"):
        tiny_dc_config(head="kept")
    # a run saved before `head`: reset_head True reads as the reference's reset
    saved = tiny_dc_config().to_dict()
    old = {k: v for k, v in saved.items() if k != "head"}
    assert kit.DeepClusterConfig.from_dict({**old, "reset_head": True}) == tiny_dc_config()
    with pytest.raises(ValueError, match="reset_head=False"):
        kit.DeepClusterConfig.from_dict({**old, "reset_head": False})


# 9-11, 23: the loop ---------------------------------------------------------------------------
def test_epoch_zero_clusters_the_untrained_network_then_logs_nmi_from_epoch_one(mnist_small):
    train, _ = mnist_small
    cfg = tiny_dc_config()
    dc = kit.DeepCluster(cfg)
    h = dc.fit(train, epochs=3)
    # reproduce epoch 0's clustering by hand from an untrained network with the same seed
    kit.seed_everything(cfg.seed)
    net = build_network(cfg, train, neck=False)
    x = preprocess_features(kit.extract_features(net, train), cfg.pca_dim)
    labels0 = KMeans(cfg.n_clusters, cfg.kmeans_iters, h["epoch"][0]["kmeans_seed"]).fit(x).labels_
    assert np.array_equal(labels0, h["labels"][0])
    seeds = [r["kmeans_seed"] for r in h["epoch"]]
    assert len(set(seeds)) == 3  # a fresh seed every clustering
    assert h["epoch"][0]["nmi_prev"] is None
    for t in (1, 2):
        assert h["epoch"][t]["nmi_prev"] == pytest.approx(
            metrics.nmi(h["labels"][t - 1], h["labels"][t])
        )
    assert [len(a) for a in h["labels"]] == [400] * 3
    assert len(h["step"]["loss"]) == 3 * math.ceil(400 / 64)
    first = h["step"]["loss"][0]
    assert abs(first - math.log(cfg.n_clusters)) < 0.1  # plain CE over K classes starts at ln K
    for key in (
        "empty",
        "min_size",
        "max_size",
        "inertia",
        "time_extract",
        "time_cluster",
        "time_train",
        "label_change",
    ):
        assert key in h["epoch"][2]


def test_nmi_of_a_relabelled_permutation_is_one():
    a = np.random.default_rng(0).integers(0, 30, 1000)
    perm = np.random.default_rng(1).permutation(30)
    assert metrics.nmi(a, perm[a]) == pytest.approx(1.0)
    assert metrics.label_change(a, perm[a]) == 0.0


def test_callback_and_stop(mnist_small):
    """A stop set from a step's record takes effect at the next step (on the CPU a step's loss is
    read at once; on a card every READ_EVERY steps, to spare its queue a wait per step), and the
    stopped epoch leaves no trace."""
    import threading

    train, _ = mnist_small
    stop, seen = threading.Event(), []

    def cb(rec):
        seen.append(rec["kind"])
        if seen.count("step") == 3:
            stop.set()

    h = kit.DeepCluster(tiny_dc_config()).fit(train, epochs=5, callback=cb, stop=stop)
    # the stopped epoch is rolled back (issue 31, item 4): a next fit runs it whole, as one
    # uninterrupted fit would
    assert seen == ["step"] * 3 and h["epoch"] == [] and h["step"]["loss"] == []


def test_reusing_the_monitors_features_changes_nothing(mnist_small, monkeypatch):
    """With monitoring on, the next epoch clusters the features the monitor just extracted."""
    train, test = mnist_small
    cached = kit.DeepCluster(tiny_dc_config(eval_every=1)).fit(train, epochs=3, eval_dataset=test)
    epoch = kit.DeepCluster._epoch
    monkeypatch.setattr(
        kit.DeepCluster,
        "_epoch",
        lambda self, ds, cb, stop, features=None: epoch(self, ds, cb, stop),
    )
    fresh = kit.DeepCluster(tiny_dc_config(eval_every=1)).fit(train, epochs=3, eval_dataset=test)
    assert all(np.array_equal(a, b) for a, b in zip(cached["labels"], fresh["labels"]))
    assert cached["step"]["loss"] == fresh["step"]["loss"]


@pytest.mark.parametrize(
    "backbone,neck", [("convnet", False), ("convnet", True), ("resnet18", False)]
)
def test_extraction_folds_batchnorm_without_changing_the_function(mnist_small, backbone, neck):
    from kit.parts.features import inference_module

    train, _ = mnist_small
    net = build_network(tiny_dc_config(backbone=backbone), train, neck=neck).eval()
    with torch.no_grad():  # give BN non-trivial running statistics first
        net.train()(train.batch(torch.arange(64), torch.device("cpu"), train=True))
    net.eval()
    fused = inference_module(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())  # all folded
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original untouched
    x = train.batch(torch.arange(16), torch.device("cpu"), train=False)
    with torch.no_grad():
        ref, out = net.features(x), fused(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())
