"""ALGORITHMS.md §5, ODC checklist items 12-18, on small hand-made memories."""
import pytest
import torch
import torch.nn.functional as F

from kit.memory import ODCMemory, _last_occurrence, class_weights


def _memory(n=60, d=8, k=4, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, d, generator=g)
    labels = torch.arange(n) % k
    mem = ODCMemory(n, d, k, **kw)
    mem.init(feats, labels)
    return mem, feats, labels


def test_init_normalises_features_and_sets_centroids_to_member_means():
    mem, feats, labels = _memory()
    assert torch.allclose(mem.features.norm(dim=1), torch.ones(60), atol=1e-6)
    assert torch.equal(mem.labels, labels)
    f = F.normalize(feats, dim=1)
    for c in range(4):
        assert torch.allclose(mem.centroids[c], f[labels == c].mean(0), atol=1e-6)


def test_init_fills_empty_clusters_instead_of_asserting():
    n, k = 40, 5
    labels = torch.arange(n) % 3  # clusters 3 and 4 empty
    mem = ODCMemory(n, 6, k)
    moved = mem.init(torch.randn(n, 6), labels)
    assert moved > 0 and (mem.counts() > 0).all()


def test_update_changes_only_the_batch_rows_with_the_momentum_rule():
    mem, _, _ = _memory(momentum=0.5)
    old_f, old_l, old_c = mem.features.clone(), mem.labels.clone(), mem.centroids.clone()
    idx = torch.tensor([3, 17, 42])
    z = torch.randn(3, 8).abs()
    ratio = mem.update(idx, z)
    expected = F.normalize(0.5 * old_f[idx] + 0.5 * F.normalize(z, dim=1), dim=1)
    assert torch.allclose(mem.features[idx], expected, atol=1e-6)
    assert torch.allclose(mem.features[idx].norm(dim=1), torch.ones(3), atol=1e-6)
    rest = torch.ones(60, dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(mem.features[rest], old_f[rest]) and torch.equal(mem.labels[rest], old_l[rest])
    new = (expected @ old_c.T).argmax(1)  # argmax over the *unnormalised* centroids
    assert torch.equal(mem.labels[idx], new)
    assert ratio == pytest.approx((new != old_l[idx]).float().mean().item())
    assert torch.equal(mem.centroids, old_c)  # centroids only change on recompute


def test_labels_follow_unnormalised_centroids():
    """A long centroid wins over a better-aligned short one: raw inner product, as the reference."""
    mem = ODCMemory(4, 2, 2, momentum=1.0)
    mem.init(torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]]), torch.tensor([0, 0, 1, 1]))
    mem.centroids.copy_(torch.tensor([[2.0, 0.0], [0.6, 0.8]]))
    mem.update(torch.tensor([2]), torch.tensor([[0.6, 0.8]]))
    assert mem.labels[2] == 0  # <(2,0),(0.6,0.8)> = 1.2 > 1.0


def test_change_ratio_counts_exactly():
    mem = ODCMemory(4, 2, 2, momentum=1.0)
    mem.init(torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]]), torch.tensor([0, 0, 1, 1]))
    r = mem.update(torch.tensor([0, 1, 2, 3]), torch.tensor([[0.0, 1], [1, 0], [1, 0], [0, 1]]))
    assert r == 0.5 and mem.labels.tolist() == [1, 0, 0, 1]


def test_duplicate_indices_last_write_wins():
    mem = ODCMemory(3, 2, 2, momentum=1.0)
    mem.init(torch.tensor([[1.0, 0], [0, 1], [1, 1]]), torch.tensor([0, 1, 0]))
    mem.update(torch.tensor([2, 2]), torch.tensor([[1.0, 0], [0, 1]]))
    assert torch.allclose(mem.features[2], torch.tensor([0.0, 1.0]))
    assert _last_occurrence(torch.tensor([5, 1, 5, 2, 1])).sort().values.tolist() == [2, 3, 4]


def test_nan_batch_raises_and_leaves_the_memory_untouched():
    mem, _, _ = _memory()
    before = {k: v.clone() for k, v in mem.state_dict().items()}
    z = torch.randn(2, 8)
    z[1, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="left unchanged"):
        mem.update(torch.tensor([0, 1]), z)
    assert all(torch.equal(before[k], v) for k, v in mem.state_dict().items())


def test_recompute_centroids_gives_member_means_and_keeps_empty_ones():
    mem, _, _ = _memory()
    mem.update(torch.arange(20), torch.randn(20, 8))
    mem.labels[mem.labels == 3] = 2  # cluster 3 is now empty
    kept = mem.centroids[3].clone()
    mem.recompute_centroids()
    for c in range(3):
        assert torch.allclose(mem.centroids[c], mem.features[mem.labels == c].mean(0), atol=1e-6)
    assert torch.equal(mem.centroids[3], kept)


def test_fix_small_clusters_dissolves_and_refills_by_splitting_the_largest():
    n, k = 100, 5
    g = torch.Generator().manual_seed(1)
    labels = torch.cat([torch.zeros(60), torch.ones(25), torch.full((12,), 2), torch.full((3,), 3)]).long()
    feats = torch.randn(n, 6, generator=g)
    mem = ODCMemory(n, 6, k, min_cluster_size=10)
    mem.init(feats, labels)  # cluster 4 empty -> filled at init by splitting cluster 0
    mem.labels[mem.labels == 4] = 0  # empty it again, and make cluster 3 (3 members) small
    mem.recompute_centroids()
    small_members = torch.nonzero(mem.labels == 3).flatten()
    allowed = torch.tensor([0, 1, 2])
    nearest = allowed[(mem.features[small_members] @ mem.centroids[allowed].T).argmax(1)]
    c_before = mem.centroids.clone()
    moved = mem.fix_small_clusters()
    counts = mem.counts()
    assert (counts > 0).all()  # no cluster id is empty afterwards
    assert moved >= len(small_members)
    # the small cluster's original members went to the nearest centroid outside the small set ...
    for i, c in zip(small_members.tolist(), nearest.tolist()):
        assert mem.labels[i] in (c, 3, 4)  # ... unless that cluster was then split and they moved on
    # ... and cluster 0, the largest (60), was split to refill the freed ids
    assert counts[0] < 60 and counts[3] + counts[4] >= 2
    for c in (0, 3, 4):  # centroids of the split clusters recomputed
        assert torch.allclose(mem.centroids[c], mem.features[mem.labels == c].mean(0), atol=1e-5)
    assert torch.equal(mem.centroids[1], c_before[1]) and torch.equal(mem.centroids[2], c_before[2])


def test_fix_small_clusters_is_free_when_nothing_is_small():
    mem, _, _ = _memory(min_cluster_size=5)
    before = mem.labels.clone()
    assert mem.fix_small_clusters() == 0 and torch.equal(mem.labels, before)


def test_class_weights_sum_to_one_and_scale_as_size_to_minus_half():
    labels = torch.tensor([0] * 100 + [1] * 25 + [2] * 4)
    w = class_weights(labels, 3)
    assert w.sum().item() == pytest.approx(1.0)
    assert (w[1] / w[0]).item() == pytest.approx(2.0, rel=1e-4) and (w[2] / w[0]).item() == pytest.approx(5.0, rel=1e-4)


def test_weighted_loss_is_invariant_to_scaling_the_weights():
    logits, y, w = torch.randn(16, 3), torch.randint(3, (16,)), torch.rand(3)
    a = F.cross_entropy(logits, y, weight=w)
    assert torch.allclose(a, F.cross_entropy(logits, y, weight=7 * w))


def test_more_clusters_than_samples_is_refused():
    with pytest.raises(ValueError, match="cannot fill 10 clusters"):
        ODCMemory(5, 4, 10)
