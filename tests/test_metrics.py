"""Each metric against scikit-learn or a hand-computed value."""
import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.neighbors import KNeighborsClassifier

from kit import metrics


@pytest.fixture
def two_labelings():
    g = np.random.default_rng(0)
    a = g.integers(0, 12, 3000)
    b = np.where(g.random(3000) < 0.7, a % 8, g.integers(0, 8, 3000))
    return a, b


def test_nmi_is_the_geometric_definition(two_labelings):
    a, b = two_labelings
    assert metrics.nmi(a, b) == pytest.approx(skm.normalized_mutual_info_score(a, b, average_method="geometric"))
    # by hand: I(A;B) / sqrt(H(A) H(B))
    mi = skm.mutual_info_score(a, b)
    h = lambda x: -(p := np.bincount(x) / len(x))[p > 0] @ np.log(p[p > 0])  # noqa: E731
    assert metrics.nmi(a, b) == pytest.approx(mi / np.sqrt(h(a) * h(b)))
    assert metrics.nmi(a, b) != pytest.approx(skm.normalized_mutual_info_score(a, b))  # not the arithmetic default


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
    assert (votes.argmax() == yte[0]) == (metrics.knn_accuracy(xtr, ytr, xte[:1], yte[:1], k=10) == 1.0)
