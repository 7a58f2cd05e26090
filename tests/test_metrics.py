"""Each metric against scikit-learn or a hand-computed value."""
import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.neighbors import KNeighborsClassifier

from kit.parts import metrics


@pytest.fixture
def two_labelings():
    g = np.random.default_rng(0)
    a = g.integers(0, 12, 3000)
    b = np.where(g.random(3000) < 0.7, a % 8, g.integers(0, 8, 3000))
    return a, b


def test_nmi_is_the_geometric_definition(two_labelings):
    a, b = two_labelings
    assert metrics.nmi(a, b) == pytest.approx(
        skm.normalized_mutual_info_score(a, b, average_method="geometric")
    )
    # by hand: I(A;B) / sqrt(H(A) H(B))
    mi = skm.mutual_info_score(a, b)
    h = lambda x: -(p := np.bincount(x) / len(x))[p > 0] @ np.log(p[p > 0])  # noqa: E731
    assert metrics.nmi(a, b) == pytest.approx(mi / np.sqrt(h(a) * h(b)))
    # not the arithmetic default
    assert metrics.nmi(a, b) != pytest.approx(skm.normalized_mutual_info_score(a, b))


def test_ari_matches_sklearn(two_labelings):
    a, b = two_labelings
    assert metrics.ari(a, b) == pytest.approx(skm.adjusted_rand_score(a, b))


def test_cluster_acc_by_hand():
    target = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    pred = np.array([2, 2, 1, 0, 0, 0, 1, 1])  # best map: 2->0, 0->1, 1->2: 7 of 8 right
    assert metrics.cluster_acc(pred, target) == pytest.approx(7 / 8)


def test_label_change_is_zero_for_a_permutation_and_half_on_a_hand_made_case():
    a = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assert metrics.label_change(a, np.array([5, 5, 4, 4, 7, 7, 6, 6])) == 0.0
    b = np.array([1, 0, 0, 1, 3, 2, 2, 3])  # after the best matching, 4 of 8 moved
    assert metrics.label_change(a, b) == 0.5
    assert metrics.label_change(a, b, method="majority") == 0.5


def test_majority_matching_is_many_to_one():
    pred = np.array([0, 0, 1, 1, 2, 2])
    target = np.array([0, 0, 0, 0, 1, 1])
    assert metrics.match_clusters(pred, target, "majority").tolist() == [0, 0, 1]
    assert metrics.match_clusters(pred, target, "hungarian")[2] == 1


def test_cluster_sizes():
    s = metrics.cluster_sizes(np.array([0, 0, 0, 1, 3]), 5)
    assert (s["empty"], s["min_size"], s["max_size"]) == (2, 0, 3)
    p = np.array([3, 1, 1]) / 5
    assert s["size_entropy"] == pytest.approx(-(p * np.log(p)).sum())


def test_knn_accuracy_matches_a_hand_weighted_vote_and_sklearn_on_easy_data():
    g = np.random.default_rng(0)
    centres = g.normal(size=(4, 16)) * 5
    ytr, yte = g.integers(0, 4, 400), g.integers(0, 4, 100)
    xtr = centres[ytr] + g.normal(size=(400, 16))
    xte = centres[yte] + g.normal(size=(100, 16))
    ours = metrics.knn_accuracy(xtr, ytr, xte, yte, k=10)
    nx = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    sk = KNeighborsClassifier(10, metric="cosine").fit(xtr, ytr).score(xte, yte)
    assert ours == pytest.approx(sk, abs=0.03) and ours > 0.95
    # one query by hand: votes weighted by exp(cos / 0.07)
    s = nx(xte[:1]) @ nx(xtr).T
    top = np.argsort(-s[0])[:10]
    votes = np.bincount(ytr[top], weights=np.exp(s[0, top] / 0.07), minlength=4)
    assert (votes.argmax() == yte[0]) == (
        metrics.knn_accuracy(xtr, ytr, xte[:1], yte[:1], k=10) == 1.0
    )


def test_ami_matches_sklearn_and_two_random_partitions_at_k300_read_zero_ami_but_half_nmi():
    g = np.random.default_rng(0)
    a, b = g.integers(0, 300, 4000), g.integers(0, 300, 4000)  # independent: no relation at all
    assert metrics.ami(a, b) == pytest.approx(
        skm.adjusted_mutual_info_score(a, b, average_method="geometric")
    )
    assert abs(metrics.ami(a, b)) < 0.01 and abs(metrics.ari(a, b)) < 0.01
    # NMI's chance level at K = 300, N = 4,000 (the table: 0.541)
    assert 0.5 < metrics.nmi(a, b) < 0.6
    # the floor sits where NMI is
    assert metrics.nmi_chance(a, b) == pytest.approx(metrics.nmi(a, b), abs=0.02)
    assert metrics.ami(a, a) == pytest.approx(1.0)


def test_nmi_chance_keeps_cluster_sizes_and_climbs_with_k():
    g = np.random.default_rng(1)
    floors = [
        metrics.nmi_chance(g.integers(0, k, 4000), g.integers(0, k, 4000)) for k in (10, 100, 300)
    ]
    assert floors[0] < 0.01 < floors[1] < floors[2]  # the bias the chance-corrected measures remove
    a = np.repeat(np.arange(10), [1000, 500] + [312] * 8)[:4000]
    b = a[::-1].copy()
    shuffled = b[np.random.default_rng(0).permutation(len(b))]  # what nmi_chance compares a with
    assert np.array_equal(np.bincount(shuffled), np.bincount(b))
    assert metrics.nmi_chance(a, b) == pytest.approx(metrics.nmi(a, shuffled))


def test_agreement_names_its_keys_and_skips_ami_only_where_it_would_be_slow(
    two_labelings, monkeypatch
):
    a, b = two_labelings
    out = metrics.agreement(a, b, suffix="_prev")
    assert set(out) == {"nmi_prev", "nmi_prev_chance", "ami_prev", "ari_prev"}
    assert out["ami_prev"] == pytest.approx(
        skm.adjusted_mutual_info_score(a, b, average_method="geometric")
    )
    assert out["ari_prev"] == pytest.approx(skm.adjusted_rand_score(a, b))
    # no previous labelling yet
    assert metrics.agreement(None, b, suffix="_prev") == dict.fromkeys(out)
    monkeypatch.setattr(metrics, "AMI_MAX_WORK", 12 * len(a) - 1)  # K x N just past the limit
    slow = metrics.agreement(a, b, suffix="_prev")
    assert (
        slow["ami_prev"] is None
        and slow["ari_prev"] == out["ari_prev"]
        and slow["nmi_prev_chance"] is not None
    )


def test_within_class_moves_tells_a_boundary_inside_a_class_from_a_move_across_classes():
    classes = np.array([0] * 6 + [1] * 4)
    # class 0 cut in two clusters (0, 1), class 1 one cluster (2)
    prev = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    inside = prev.copy()
    inside[2] = 1  # an image of class 0 crosses the boundary inside class 0
    assert metrics.within_class_moves(prev, inside, classes) == 1.0
    across = prev.copy()
    across[2] = 2  # an image of class 0 joins class 1's cluster
    assert metrics.within_class_moves(prev, across, classes) == 0.0
    assert np.isnan(metrics.within_class_moves(prev, prev, classes))
