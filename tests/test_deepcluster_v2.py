"""DeepCluster-v2 (issue 30's third algorithm): checked against the SwAV repository's
`main_deepclusterv2.py` the way the other two are checked against theirs (the same inputs give the
same assignments, centroids and loss), trained by `compare --algos`, resumed exactly, and evaluated
as the other two are."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.sparse import csr_matrix
from torch import nn

import kit
from conftest import tiny_v2_config
from kit.algorithms.deepcluster_v2 import (
    DeepClusterV2,
    DeepClusterV2Config,
    DeepClusterV2Net,
    cluster_memory,
    v2_loss,
)
from kit.parts.models import build_backbone


# The reference, facebookresearch/swav main_deepclusterv2.py (cluster_memory, get_indices_sparse,
# the loss of `train`), in one process: the torch.distributed calls are the identity there
# (broadcast from rank 0, all_reduce and all_gather over one rank), `args` are arguments, `.cuda()`
# is dropped, and the random rows come from a generator passed in instead of torch's global one.
# Otherwise line for line.
def reference_cluster_memory(
    memory_index,
    memory_embeddings,
    size_dataset,
    nmb_prototypes,
    feat_dim,
    generator,
    nmb_kmeans_iters=10,
):
    j = 0
    assignments = -100 * torch.ones(len(nmb_prototypes), size_dataset).long()
    centroids_of = []
    with torch.no_grad():
        for i_K, K in enumerate(nmb_prototypes):
            random_idx = torch.randperm(len(memory_embeddings[j]), generator=generator)[:K]
            assert len(random_idx) >= K, "please reduce the number of centroids"
            centroids = memory_embeddings[j][random_idx]
            for n_iter in range(nmb_kmeans_iters + 1):
                dot_products = torch.mm(memory_embeddings[j], centroids.t())
                _, local_assignments = dot_products.max(dim=1)
                if n_iter == nmb_kmeans_iters:
                    break
                where_helper = get_indices_sparse(local_assignments.cpu().numpy())
                counts = torch.zeros(K).int()
                emb_sums = torch.zeros(K, feat_dim)
                for k in range(len(where_helper)):
                    if len(where_helper[k][0]) > 0:
                        emb_sums[k] = torch.sum(memory_embeddings[j][where_helper[k][0]], dim=0)
                        counts[k] = len(where_helper[k][0])
                mask = counts > 0
                centroids[mask] = emb_sums[mask] / counts[mask].unsqueeze(1)
                centroids = nn.functional.normalize(centroids, dim=1, p=2)
            centroids_of.append(centroids)
            assignments[i_K][memory_index] = local_assignments
            j = (j + 1) % len(memory_embeddings)
    return assignments, centroids_of


def get_indices_sparse(data):
    cols = np.arange(data.size)
    M = csr_matrix((cols, (data.ravel(), cols)), shape=(int(data.max()) + 1, data.size))
    return [np.unravel_index(row.data, data.shape) for row in M]


def reference_loss(output, assignments, idx, temperature, nmb_crops=(1,)):
    cross_entropy = nn.CrossEntropyLoss(ignore_index=-100)
    loss = 0
    for h in range(len(output)):
        scores = output[h] / temperature
        targets = assignments[h][idx].repeat(sum(nmb_crops))
        loss += cross_entropy(scores, targets)
    return loss / len(output)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_of_the_memory_is_the_references(seed):
    """Three heads of different K over two memory banks of unit vectors (blobs, with clusters that
    empty on the way), clustered by turns: the same random rows give the same assignments and
    unit-length centroids, head by head."""
    g = torch.Generator().manual_seed(100 + seed)
    centres = F.normalize(torch.randn(6, 16, generator=g), dim=1)
    noisy = F.normalize(
        centres[torch.randint(6, (300,), generator=g)] + 0.3 * torch.randn(300, 16, generator=g),
        dim=1,
    )
    # 300 exact copies: rows drawn twice make empty clusters
    memory = torch.cat([noisy, centres.repeat(50, 1)])
    banks = torch.stack(
        [memory, F.normalize(memory + 0.2 * torch.randn(600, 16, generator=g), dim=1)]
    )
    heads = [12, 12, 40]
    ours = cluster_memory(banks, heads, 10, torch.Generator().manual_seed(seed))
    theirs, centroids = reference_cluster_memory(torch.arange(600), list(banks), 600, heads, 16,
                                                 torch.Generator().manual_seed(seed))
    assert not torch.equal(ours[0][0], ours[1][0])  # heads 0 and 1 cluster different banks
    for h, ((labels, c), ref_c) in enumerate(zip(ours, centroids)):
        assert torch.equal(labels, theirs[h]), h
        torch.testing.assert_close(c, ref_c, rtol=0, atol=1e-6)
        assert torch.allclose(c.norm(dim=1), torch.ones(len(c)))
    # the K = 40 head's rows: the generator's third draw
    third = torch.randperm(600, generator=_after(seed, 2))[:40]
    first = (memory @ memory[third].T).argmax(1)
    # the K = 40 head starts with empty clusters (kept in place)
    assert (torch.bincount(first, minlength=40) == 0).any()


def _after(seed: int, draws: int) -> torch.Generator:
    """A generator seeded `seed` that has made `draws` draws of randperm(600)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(draws):
        torch.randperm(600, generator=g)
    return g


def test_the_network_and_loss_are_the_references(mnist_small):
    """kit's network gives SwAV's forward_head (projection head, L2 normalisation, MultiPrototypes)
    with the same weights, and its loss on a batch is the reference's: the mean over heads of
    CE(scores / temperature)."""
    train, _ = mnist_small
    torch.manual_seed(0)
    backbone = build_backbone("convnet", in_channels=1, image_size=28)
    net = DeepClusterV2Net(backbone, [20, 20, 7], hidden=64, feat_dim=32).eval()
    projection_head = nn.Sequential(
        nn.Linear(backbone.feature_dim, 64),
        nn.BatchNorm1d(64),
        nn.ReLU(inplace=True),
        nn.Linear(64, 32),
    ).eval()
    projection_head.load_state_dict({"0.weight": net.neck.fc0.weight, "0.bias": net.neck.fc0.bias,
                                     **{f"1.{k}": v for k, v in net.neck.bn0.state_dict().items()},
                                     "3.weight": net.neck.fc1.weight, "3.bias": net.neck.fc1.bias})
    x = torch.stack([train[i][0] for i in range(16)])
    with torch.no_grad():
        z, scores = net(x)
        ref_z = F.normalize(projection_head(backbone(x)), dim=1, p=2)
        # MultiPrototypes: a bias-free Linear per head
        ref_scores = [head(ref_z) for head in net.head.heads]
    torch.testing.assert_close(z, ref_z)
    assert [s.shape for s in scores] == [(16, 20), (16, 20), (16, 7)]
    for s, r in zip(scores, ref_scores):
        torch.testing.assert_close(s, r)
    assignments = torch.stack([torch.randint(k, (400,)) for k in (20, 20, 20)])
    idx = torch.randperm(400)[:16]
    two_crops = tuple(torch.cat([s, torch.randn(16, 20)]) for s in scores[:2]) + (
        torch.randn(32, 20),
    )
    # as kit's step
    torch.testing.assert_close(v2_loss(two_crops, [a[idx].repeat(2) for a in assignments], 0.1),
                               reference_loss(two_crops, assignments, idx, 0.1, nmb_crops=(2,)))
    # frozen, as the published scripts' freeze_prototypes_niters = 300000
    assert all(not p.requires_grad for p in net.head.parameters())


def test_an_epoch_trains_on_the_memorys_clusters_with_the_centroids_as_prototypes(
    mnist_small, monkeypatch
):
    """An epoch clusters the memory its previous epoch wrote, trains with those labels on two views
    of each image, leaves the prototypes exactly the centroids (no gradient, no weight decay reaches
    them), and writes each view's projection into its own bank."""
    train, _ = mnist_small
    v2 = DeepClusterV2(tiny_v2_config())
    v2.prepare(train)
    before = v2.memory.clone()
    assert before.shape == (2, len(train), 128)  # the reference's two crops, a bank each
    # the untrained network's projections
    assert torch.allclose(before.norm(dim=2), torch.ones(2, len(train)))
    # two augmentations of each image, not one twice
    assert (before[0] * before[1]).sum(1).max() < 1 - 1e-4
    clusterings = []
    original = cluster_memory

    def spy(memory, heads, iters, generator):
        out = original(memory, heads, iters, generator)
        clusterings.append((memory.clone(), out))
        return out

    monkeypatch.setattr("kit.algorithms.deepcluster_v2.cluster_memory", spy)
    history = v2.fit(train, epochs=2)
    assert torch.equal(clusterings[0][0], before)  # epoch 0 clusters the initial memory
    (memory1, out1) = clusterings[1]
    assert not torch.equal(memory1, before)  # epoch 1 clusters what epoch 0 wrote
    for head, (_, centroids) in zip(v2.model.head.heads, out1):
        assert torch.equal(head.weight, centroids)  # trained a whole epoch, still the centroids
    # the recorded labels: the first head's
    assert np.array_equal(history["labels"][1], out1[0][0].numpy())
    record = history["epoch"][1]
    assert (
        record["ami_prev"] is not None
        and 0 <= record["label_change"] <= 1
        and record["nonempty"] <= 20
    )


def test_exact_resume_and_the_checkpoint_holds_the_memory(mnist_small, tmp_path):
    """Two epochs at once, or one, a checkpoint and one more in a new trainer: the same labels,
    losses and weights."""
    from kit.store.runs import Run

    train, _ = mnist_small
    whole = DeepClusterV2(tiny_v2_config())
    whole.fit(train, epochs=2)
    run = Run.create(tmp_path, "v2")
    DeepClusterV2(tiny_v2_config()).fit(train, epochs=1, run=run)
    again = DeepClusterV2(tiny_v2_config())
    again.fit(train, epochs=2, run=run)
    assert [r["loss"] for r in again.history["epoch"]] == [
        r["loss"] for r in whole.history["epoch"]
    ]
    assert all(
        np.array_equal(a, b) for a, b in zip(again.history["labels"], whole.history["labels"])
    )
    assert torch.equal(again.memory, whole.memory)
    for a, b in zip(again.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_settings_are_refused_in_one_line(mnist_small):
    train, _ = mnist_small
    with pytest.raises(ValueError, match="the first head's K is n_clusters"):
        DeepClusterV2Config.fast(prototypes=[30, 20])
    with pytest.raises(ValueError, match="temperature=0 is out of range"):
        DeepClusterV2Config.fast(temperature=0)
    assert DeepClusterV2Config.fast(prototypes=(20, 50)).heads == [20, 50]
    assert DeepClusterV2Config().heads == [3000] * 3  # the reference's 3 x 3000
    with pytest.raises(ValueError, match="n_clusters"):
        # a head with more K than images
        DeepClusterV2(tiny_v2_config(prototypes=[20, 1000])).fit(train, epochs=1)
    with pytest.raises(ValueError, match="use crops=1, or a tensor dataset"):
        # a dataset that cannot augment a batch again
        DeepClusterV2(tiny_v2_config())._check(list(train))


def test_compare_trains_the_three_named_and_the_report_shows_them(tmp_path):
    """`compare --algos deepcluster,odc,deepcluster-v2`: three folders, three report columns in its
    colour, the evaluation's loader reads its backbone (whatever its projection and prototypes)."""
    from kit.__main__ import main
    from kit.commands.evaluate_run import load_backbone
    from kit.store.runs import Run

    code = main(
        [
            "compare",
            "--runs",
            str(tmp_path),
            "--name",
            "three",
            "--algos",
            "deepcluster,odc,deepcluster-v2",
            "--epochs",
            "2",
            "--n-train",
            "300",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    run = tmp_path / "three"
    assert json.loads((run / "config.json").read_text())["compare"]["algos"] == [
        "deepcluster",
        "odc",
        "deepcluster-v2",
    ]
    histories = {a: Run(run / a).load_history() for a in ("deepcluster", "odc", "deepcluster-v2")}
    assert len(histories["deepcluster-v2"]["epoch"]) == 2
    # one K for the three (the fast presets)
    assert {h["config"]["n_clusters"] for h in histories.values()} == {20}
    html = (run / "report.html").read_text()
    assert (
        "<h1>DeepCluster vs ODC vs DeepCluster-v2</h1>" in html
        and "th.deepcluster-v2 { color: #2ca02c }" in html
    )
    backbone, _ = load_backbone(run, "deepcluster-v2", kit.load_dataset("mnist5k", n=300))
    trained = torch.load(run / "deepcluster-v2" / "checkpoint.pt", weights_only=False)["model"]
    assert torch.equal(backbone.state_dict()["stem.0.weight"], trained["backbone.stem.0.weight"])


def test_nan_projections_stop_the_epoch_with_the_row_named(mnist_small, monkeypatch):
    """A projection that went NaN in training is refused at the epoch's end (kit's check_finite),
    and the fit rolls the epoch back: the history holds no record of it."""
    from kit.parts.runtime import Diverged

    train, _ = mnist_small
    v2 = DeepClusterV2(tiny_v2_config())
    trained = DeepClusterV2._train

    def poisoned(self, *a):
        loss = trained(self, *a)
        self.memory[1, 3] = float("nan")
        return loss

    monkeypatch.setattr(DeepClusterV2, "_train", poisoned)
    with pytest.raises(
        Diverged,
        match=r"the projections of epoch 0 contain NaN/inf in 1 of 400 rows \(first: row 3\)",
    ):
        v2.fit(train, epochs=1)
    assert v2.history["epoch"] == [] and v2.epoch == 0
