"""ALGORITHMS.md §5, ODC checklist items 12-18, on small hand-made memories."""
import pytest
import torch
import torch.nn.functional as F

from kit.algorithms.memory import ODCMemory, _last_occurrence, class_weights


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
    assert torch.equal(mem.features[rest], old_f[rest]) and torch.equal(
        mem.labels[rest], old_l[rest]
    )
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
    # where each value occurs last
    assert _last_occurrence(torch.tensor([5, 1, 5, 2, 1])).tolist() == [2, 4, 2, 3, 4]


def test_nan_batch_writes_nothing_and_reads_back_nan():
    mem, _, _ = _memory()
    before = {k: v.clone() for k, v in mem.state_dict().items()}
    sums, sizes = mem.sums.clone(), mem.sizes.clone()
    z = torch.randn(2, 8)
    z[1, 3] = float("nan")
    # masked on the device, not branched on: no sync
    assert torch.isnan(mem.update(torch.tensor([0, 1]), z))
    assert all(torch.equal(before[k], v) for k, v in mem.state_dict().items())
    assert torch.equal(mem.sums, sums) and torch.equal(mem.sizes, sizes)


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
    labels = torch.cat(
        [torch.zeros(60), torch.ones(25), torch.full((12,), 2), torch.full((3,), 3)]
    ).long()
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
        # ... unless that cluster was then split and they moved on
        assert mem.labels[i] in (c, 3, 4)
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
    assert (w[1] / w[0]).item() == pytest.approx(2.0, rel=1e-4) and (
        w[2] / w[0]
    ).item() == pytest.approx(5.0, rel=1e-4)


def test_weighted_loss_is_invariant_to_scaling_the_weights():
    logits, y, w = torch.randn(16, 3), torch.randint(3, (16,)), torch.rand(3)
    a = F.cross_entropy(logits, y, weight=w)
    assert torch.allclose(a, F.cross_entropy(logits, y, weight=7 * w))


def test_more_clusters_than_samples_is_refused():
    with pytest.raises(ValueError, match="5 samples cannot form 10 clusters"):
        ODCMemory(5, 4, 10)


# incremental sums: the periodic recompute only divides -------------------------------------------
class FullRecompute(ODCMemory):
    """The memory computed as the reference computes it: sizes by a bincount over all N labels,
    every recompute a mean over all N rows. In float64, so that rounding alone cannot flip a
    label."""

    def counts(self):
        return torch.bincount(self.labels, minlength=self.n_clusters)

    def recompute_centroids(self, clusters=None):
        counts = self.counts()
        sums = torch.zeros(self.n_clusters, self.dim, dtype=torch.float64).index_add_(
            0, self.labels, self.features.double()
        )
        update = counts > 0
        if clusters is not None:
            keep = torch.zeros_like(update)
            keep[clusters] = True
            update &= keep
        self.centroids[update] = (sums[update] / counts[update, None]).float()


def test_incremental_sums_match_full_recomputes_over_1000_iterations():
    n, d, k, b = 300, 8, 10, 32
    g = torch.Generator().manual_seed(0)
    feats, labels = torch.randn(n, d, generator=g), torch.randint(k, (n,), generator=g)
    mem, ref = ODCMemory(n, d, k, min_cluster_size=15), FullRecompute(n, d, k, min_cluster_size=15)
    mem.init(feats, labels), ref.init(feats, labels)
    worst, moved = 0.0, 0
    for it in range(1000):
        idx = torch.randint(n, (b,), generator=g)
        idx[-1] = idx[0]  # a duplicate in every batch, as sampling with replacement gives
        z = torch.randn(b, d, generator=g)
        assert mem.update(idx, z) == ref.update(idx, z)
        if (it + 1) % 10 == 0:
            mem.recompute_centroids(), ref.recompute_centroids()
        moved += mem.fix_small_clusters()
        ref.fix_small_clusters()
        assert torch.equal(mem.labels, ref.labels), f"labels differ at iteration {it}"
        # float32, as kit recomputed before
        full = torch.zeros(k, d).index_add_(0, mem.labels, mem.features)
        worst = max(worst, (mem.sums - full.double()).abs().max().item())
        assert torch.equal(mem.sizes, torch.bincount(mem.labels, minlength=k))
    assert worst <= 1e-4
    assert (
        torch.equal(mem.features, ref.features)
        and (mem.centroids - ref.centroids).abs().max() <= 1e-6
    )
    assert moved > 100  # small clusters were dissolved and split along the way


def test_checkpoints_hold_no_sums_and_old_ones_load():
    mem, _, _ = _memory()
    mem.update(torch.arange(10), torch.randn(10, 8))
    state = mem.state_dict()
    # the format saved before the sums existed
    assert set(state) == {"features", "labels", "centroids"}
    loaded = ODCMemory(60, 8, 4)
    loaded.load_state_dict(state)
    assert torch.equal(loaded.counts(), torch.bincount(mem.labels, minlength=4))
    loaded.recompute_centroids(), mem.recompute_centroids()
    assert torch.allclose(loaded.centroids, mem.centroids, atol=1e-6)
    loaded.labels[:5] = 3  # a write from outside the verbs: the next read rebuilds the sums
    assert torch.equal(loaded.counts(), torch.bincount(loaded.labels, minlength=4))


# fidelity with the reference (§2.1, §2.7) ---------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_random_fallback_split_moves_ceil_half_as_the_reference():
    """7 identical features in the largest cluster: 2-means cannot split them, so the random
    fallback does, and as in OpenSelfSup the part that takes the empty id gets ceil(7/2) = 4."""
    feats = torch.cat([torch.tensor([[1.0, 0.0, 0.0]]).expand(7, 3), torch.eye(3)])
    mem = ODCMemory(10, 3, 3)
    moved = mem.init(feats, torch.tensor([0] * 7 + [1] * 3))  # cluster 2 empty
    assert moved == 4 and mem.counts().tolist() == [3, 3, 4]


def test_odc_splits_with_the_reference_seed_whatever_the_run_seed(mnist_small):
    import kit
    from conftest import tiny_odc_config

    train, _ = mnist_small
    odc = kit.ODC(tiny_odc_config(seed=31))
    odc.setup(train)
    odc._init_memory(train)
    # sklearn KMeans(2, random_state=0) in OpenSelfSup and mmselfsup
    assert odc.memory.split_seed == 0
    odc.load_extra_state(odc.extra_state())  # the resume path builds its own memory
    assert odc.memory.split_seed == 0


# the batched small-cluster fix (issue 31, item 10) ------------------------------------------------
class OneSplitAtATime(ODCMemory):
    """The reference's loop: for each empty id, find the largest cluster, split it, recompute two
    centroids; with kit's 2-means, called on one cluster at a time."""

    def _redirect_empty(self, empty):
        moved = 0
        for e in empty.tolist():
            counts = self.counts()
            big = int(counts.argmax())
            if counts[big] < 2:
                break
            members = torch.nonzero(self.labels == big).flatten()
            part = members[self._split_in_two([self.features[members]])[0]]
            self._write(part, torch.full_like(part, e))
            moved += len(part)
            self.recompute_centroids(torch.tensor([big, e]))
        return moved


@pytest.mark.parametrize("seed", range(6))
def test_batched_splits_are_the_one_at_a_time_loops_splits(seed):
    """Skewed sizes (one cluster holding a third of the rows, so its halves outgrow the rest and a
    round must stop) and many empty ids: labels, sizes and centroids equal the sequential loop's."""
    g = torch.Generator().manual_seed(seed)
    n, d, k = 400, 8, 40
    feats = torch.randn(n, d, generator=g)
    labels = torch.where(
        torch.rand(n, generator=g) < 0.35, 0, torch.randint(1, 25, (n,), generator=g)
    )
    batched, one = (
        ODCMemory(n, d, k, min_cluster_size=6),
        OneSplitAtATime(n, d, k, min_cluster_size=6),
    )
    assert batched.init(feats, labels) == one.init(feats, labels) > 0  # 15 empty ids filled
    assert torch.equal(batched.labels, one.labels) and (batched.counts() > 0).all()
    for _ in range(3):  # then every iteration's fix: dissolve the small clusters, refill their ids
        idx = torch.randint(n, (64,), generator=g)
        z = torch.randn(64, d, generator=g)
        batched.update(idx, z), one.update(idx, z)
        assert batched.fix_small_clusters() == one.fix_small_clusters()
        assert torch.equal(batched.labels, one.labels) and torch.equal(
            batched.counts(), one.counts()
        )
        assert torch.allclose(batched.centroids, one.centroids, atol=1e-6)
    assert (batched.counts() > 0).all()


def test_rounds_stop_where_a_half_outgrows_the_next_cluster():
    """One cluster of 90 and three of 10, four empty ids: the loop splits 90, then one of its halves
    (45 > 10) and so on; the batched rounds must follow it rather than split the three 10s at
    once."""
    g = torch.Generator().manual_seed(3)
    n, d = 120, 4
    feats = torch.randn(n, d, generator=g)
    labels = torch.tensor([0] * 90 + [1] * 10 + [2] * 10 + [3] * 10)
    batched, one = (
        ODCMemory(n, d, 8, min_cluster_size=1),
        OneSplitAtATime(n, d, 8, min_cluster_size=1),
    )
    rounds = []
    split = batched._split_in_two
    batched._split_in_two = lambda groups: rounds.append(len(groups)) or split(groups)
    batched.init(feats, labels), one.init(feats, labels)
    assert torch.equal(batched.labels, one.labels)
    assert batched.counts()[1:4].tolist() == [10, 10, 10]  # the 10s were never the largest
    # batched: fewer calls than the 4 ids, each round over 4 candidates
    assert 1 < len(rounds) < 4 and rounds[0] == 4


def test_two_means_separates_two_blobs_as_scikit_learn_does():
    from sklearn.cluster import KMeans

    g = torch.Generator().manual_seed(0)
    groups = []
    for n, gap in ((30, 6.0), (7, 4.0), (101, 3.0)):
        x = torch.randn(n, 16, generator=g)
        x[: n // 3] += gap  # a third of the rows shifted along every axis
        groups.append(x)
    mem = ODCMemory(10, 16, 2)
    for x, part in zip(groups, mem._split_in_two(groups)):
        theirs = torch.as_tensor(
            KMeans(2, random_state=0, max_iter=20, n_init=1).fit(x.double().numpy()).labels_ == 1
        )
        # the same partition, either side second
        assert torch.equal(part, theirs) or torch.equal(part, ~theirs)
        third = len(x) // 3  # the shifted third is one side, the rest the other
        assert (part[:third].all() and not part[third:].any()) or (
            not part[:third].any() and part[third:].all()
        )
