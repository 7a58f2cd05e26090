"""ODC's samples memory and centroids memory (Zhan et al., CVPR 2020; ALGORITHMS.md §2).

`ODCMemory` owns three named buffers and changes them only through verb methods:
    features  (N, D) float32  L2-normalised feature of every sample
    labels    (N,)   int64    current pseudo-label of every sample
    centroids (K, D) float32  mean of each cluster's member features (never renormalised, §2.5)
and two derived ones, kept in step by the same verbs and never saved:
    sums      (K, D) float64  sum of each cluster's member features
    sizes     (K,)   int64    number of members of each cluster
so a centroid recompute is a division, not a pass over all N rows (at ImageNet scale that pass
took ~140 ms of every 10th iteration). The centroids read by the algorithm are exactly the
reference's: stale between recomputes, and only [largest, e] recomputed after a split.

Distributed runs inject `gather(idx, z) -> (idx_all, z_all, real)` (identity by default; `real`
marks the gathered rows that are not a rank's padding, or is None; a `gather` written for kit before
issue 29 returned two values and needs the third). Departure from the reference, on purpose:
mmselfsup keeps the feature memory on rank 0 only and broadcasts updates; kit keeps a full copy on
every rank and has each rank apply the same gathered batch, which gives identical memories
everywhere with one collective instead of four.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..parts.clustering import check_sizes
from ..parts.runtime import Diverged, full_precision


def class_weights(
    labels: torch.Tensor, n_clusters: int, power: float = 0.5, eps: float = 1e-5
) -> torch.Tensor:
    """Loss weights w_k ∝ (h_k + eps)^-power from cluster sizes h, normalised to sum 1 (§2.6).

    eps = 1e-5 as OpenSelfSup's `set_reweight` (mmselfsup: 1e-10). labels (N,) -> weights (K,)
    """
    return size_weights(torch.bincount(labels.long(), minlength=n_clusters), power, eps)


def size_weights(sizes: torch.Tensor, power: float = 0.5, eps: float = 1e-5) -> torch.Tensor:
    """`class_weights` from the cluster sizes h (K,) directly. -> (K,)"""
    w = (sizes.double() + eps) ** -power
    return (w / w.sum()).float()


def _identity_gather(idx: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
    return idx, z, None


class ODCMemory(torch.nn.Module):
    """The two memories of ODC, with the reference's update rules.

    >>> mem = ODCMemory(n_samples=N, dim=256, n_clusters=K)
    >>> mem.init(features, labels)              # from the initial k-means over all N samples
    >>> change_ratio = mem.update(idx, z)       # every iteration, the batch's neck features
    >>> mem.recompute_centroids()               # every `centroid_interval` iterations
    >>> moved = mem.fix_small_clusters()        # every iteration
    >>> w = mem.class_weights()                 # every iteration, for the weighted CE
    """

    def __init__(self, n_samples: int, dim: int, n_clusters: int, momentum: float = 0.5,
                 min_cluster_size: int = 20, gather: Callable | None = None, split_seed: int = 0):
        super().__init__()
        check_sizes(n_samples, n_clusters)
        self.n_samples, self.dim, self.n_clusters = n_samples, dim, n_clusters
        self.momentum, self.min_cluster_size = momentum, min_cluster_size
        self.gather = gather or _identity_gather
        self.split_seed = split_seed
        self.register_buffer("features", torch.zeros(n_samples, dim))
        self.register_buffer("labels", torch.zeros(n_samples, dtype=torch.long))
        self.register_buffer("centroids", torch.zeros(n_clusters, dim))
        # float64: the sums are added to and subtracted from for the whole run and never recomputed;
        # in float32 their rounding errors would random-walk over ~10^5 updates per cluster
        self.register_buffer(
            "sums", torch.zeros(n_clusters, dim, dtype=torch.float64), persistent=False
        )
        self.register_buffer("sizes", torch.zeros(n_clusters, dtype=torch.long), persistent=False)
        self._in_step_with = None  # the (features, labels) versions that sums and sizes describe

    # -- initialisation (§2.2) -------------------------------------------------------------------
    @torch.no_grad()
    def init(self, features, labels) -> int:
        """Fill the memories from the initial clustering; returns how many samples were moved to
        fill empty clusters. Departure, on purpose: the reference *asserts* no cluster is empty and
        crashes otherwise (§4); kit fills empty clusters by splitting the largest ones, as it does
        in training."""
        # array or tensor
        f = torch.as_tensor(features, dtype=torch.float32, device=self.features.device)
        if f.shape != (self.n_samples, self.dim):
            raise ValueError(
                f"features have shape {tuple(f.shape)}, expected ({self.n_samples}, {self.dim})"
            )
        if not torch.isfinite(f).all():
            raise Diverged(
                "initial features contain NaN/inf: the network has diverged before training; "
                "check the input normalisation"
            )
        self.features.copy_(F.normalize(f, dim=1))
        self.labels.copy_(torch.as_tensor(labels, device=self.labels.device).long())
        # sums and sizes are rebuilt first: features and labels were just written
        self.recompute_centroids()
        empty = torch.nonzero(self.counts() == 0).flatten()
        return self._redirect_empty(empty)

    # -- per iteration (§2.3) --------------------------------------------------------------------
    @torch.no_grad()
    def update(self, idx: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Momentum-update the rows at `idx` with the batch's features `z` (B, D), relabel them by
        the largest dot product with the centroids, and return the fraction whose label changed, as
        a 0-d tensor on the memory's device (`float()` it to read it: that waits for the device, so
        the training loop reads it once per iteration together with the loss).

        Nothing outside the (gathered) batch changes. If `z` holds a NaN/inf, nothing at all is
        written and the fraction comes back NaN. If an index appears twice in one batch (sampling
        with replacement), the last occurrence wins, as in the reference. No step waits for the
        device.
        """
        idx, z, real = self.gather(
            idx.to(self.labels.device), z.to(self.features.device, torch.float32)
        )
        # (), on the device: a bad batch is masked out below, not branched on
        ok = torch.isfinite(z).all()
        # the relabelling is an argmax of dot products: no TF32, no autocast
        with full_precision(self.features.device):
            f = F.normalize(z, dim=1)
            # (B, D)
            v = F.normalize((1 - self.momentum) * self.features[idx] + self.momentum * f, dim=1)
            # (B,) unnormalised centroids: raw inner product
            new = (v @ self.centroids.T).argmax(dim=1)
        # a rank's padding repeats its last row: it writes the same, is not counted
        changed = new != self.labels[idx]
        change_ratio = (
            changed.float().mean() if real is None else (changed & real).sum() / real.sum()
        )
        # (B,) where each index occurs last: every copy writes that one's values
        last = _last_occurrence(idx)
        # one copy of each row counts, if finite
        kept = ok & (last == torch.arange(len(idx), device=idx.device))
        self._write(
            idx,
            torch.where(ok, new[last], self.labels[idx]),
            torch.where(ok, v[last], self.features[idx]),
            counted=kept,
        )
        return torch.where(ok, change_ratio, torch.nan)

    @torch.no_grad()
    def agree(self, dist) -> int:
        """Under torchrun every rank updates its own copy of the memory from the gathered batch, and
        float atomics may relabel a near-tie differently on two cards, a difference nothing would
        undo. Once an epoch: where any rank's labels differ from rank 0's, every rank takes rank 0's
        features and labels (sums, sizes and centroids follow). Returns the number of labels that
        differed on the rank where most did (0: none, and nothing copied)."""
        drift = dist.disagreement(self.labels)
        if drift:
            self.features.copy_(dist.broadcast(self.features))
            self.labels.copy_(dist.broadcast(self.labels))
            self.recompute_centroids()
        return drift

    @torch.no_grad()
    def recompute_centroids(self, clusters: torch.Tensor | None = None) -> None:
        """Each non-empty cluster's centroid = mean of its members' features; empty ones keep
        theirs. With `clusters`, only those are recomputed (the reference's partial update after a
        split)."""
        self._keep_in_step()
        update = self.sizes > 0
        if clusters is not None:
            mask = torch.zeros_like(update)
            mask[clusters] = True
            update &= mask
        # (K, D); a where, not a masked write: no wait
        means = (self.sums / self.sizes.clamp(min=1)[:, None]).float()
        self.centroids.copy_(torch.where(update[:, None], means, self.centroids))

    @torch.no_grad()
    def fix_small_clusters(self) -> int:
        """Dissolve clusters below `min_cluster_size` into the nearest centroid outside the small
        set, then refill every freed id with half of the currently largest cluster (2-means split).
        (§2.7) Returns the number of samples whose label changed."""
        small = self.small_clusters()
        # waits for the device: `ODC._epoch` calls this only when it read that some are small
        if not small.any():
            return 0
        members = torch.nonzero(small[self.labels]).flatten()
        if len(members):
            with full_precision(self.features.device):
                scores = self.features[members] @ self.centroids.T  # (M, K)
            scores[:, small] = float("-inf")  # only clusters outside the small set may take them
            # receiving centroids wait for the next full update
            self._write(members, scores.argmax(dim=1))
        return len(members) + self._redirect_empty(torch.nonzero(small).flatten())

    def small_clusters(self) -> torch.Tensor:
        """(K,) bool: the clusters below `min_cluster_size`, on the memory's device."""
        return self.counts() < self.min_cluster_size

    def counts(self) -> torch.Tensor:
        """Cluster sizes h (K,), as `bincount(labels)`, without a pass over the N labels."""
        self._keep_in_step()
        return self.sizes.clone()

    def class_weights(self, power: float = 0.5) -> torch.Tensor:
        return size_weights(self.counts(), power)

    # -- helpers -------------------------------------------------------------------------------
    def _redirect_empty(self, empty: torch.Tensor) -> int:
        """For each empty id e, in order: split the currently largest cluster L in two with 2-means
        on its memory features, give the second part the id e, recompute the centroids of L and e.

        Batched: a round splits the len(empty) largest clusters at once (`_split_in_two`), then
        replays the one-at-a-time loop on their sizes and takes each split while the loop's next
        largest cluster is one of them, still whole; a new round starts where it is not (a half that
        outgrew the rest, or an id just filled). So the clusters split, and their order, are the
        one-at-a-time loop's; each 2-means runs in a batch, in float64, which can part a point that
        is equidistant to within rounding otherwise than a lone run would. A round pads every
        candidate to the largest (G x n_max x D float64 on the CPU: 20 clusters of 3,000 rows of 256
        take ~120 MB). With one scikit-learn call a split, ~2 ms each, a K = 300 epoch on 4,000
        digits spent over half its time (3.0 of 5.3 s) refilling ids (bench/small_clusters.py)."""
        todo, moved = empty.tolist(), 0
        while todo:
            # the len(todo) largest clusters (ties by id, as argmax) and the next one: no other can
            # be the loop's pick this round, so only these sizes (and the ids filled meanwhile) are
            # read to the host
            ranked, n = torch.sort(-self.counts(), stable=True), len(todo) + 1
            # id -> size, largest first
            sizes = dict(zip(ranked.indices[:n].tolist(), (-ranked.values[:n]).tolist()))
            order = [c for c in list(sizes)[: len(todo)] if sizes[c] >= 2]
            if not order:
                break  # nothing left to split (only when N is close to K)
            members = self._members_of(order)
            parts = self._split_in_two([self.features[m] for m in members])
            ready = {c: m[p] for c, m, p in zip(order, members, parts)}
            rows, labels, touched = [], [], []
            for e in list(todo):
                big = max(sizes, key=lambda c: (sizes[c], -c))  # argmax: the first largest
                if sizes[big] < 2:
                    todo = []  # nothing left to split
                    break
                if big not in ready:
                    break  # the loop's next pick changed in this round: split it in the next
                part = ready.pop(big)
                rows.append(part), labels.append(torch.full_like(part, e)), touched.extend((big, e))
                ready.pop(e, None)  # e's members are about to change
                sizes[big], sizes[e] = sizes[big] - len(part), sizes.get(e, 0) + len(part)
                todo.pop(0)
            # each row moves at most once a round, so one write gives the loop's sums and sizes
            if rows:
                self._write(torch.cat(rows), torch.cat(labels))
                self.recompute_centroids(torch.tensor(touched, device=self.labels.device))
                moved += sum(len(r) for r in rows)
        return moved

    def _members_of(self, clusters: list[int]) -> list[torch.Tensor]:
        """The rows of each of `clusters`, in row order, from one pass over the N labels."""
        slot = torch.full((self.n_clusters,), -1, dtype=torch.long, device=self.labels.device)
        slot[torch.tensor(clusters, device=slot.device)] = torch.arange(
            len(clusters), device=slot.device
        )
        rows = torch.nonzero(slot[self.labels] >= 0).flatten()
        rows = rows[torch.sort(slot[self.labels[rows]], stable=True).indices]
        return list(
            rows.split(torch.bincount(slot[self.labels[rows]], minlength=len(clusters)).tolist())
        )

    def _split_in_two(self, groups: list[torch.Tensor], iters: int = 20) -> list[torch.Tensor]:
        """For each group (n_i, D) of features, a boolean mask of the second part of a 2-means
        split.

        Departure, on purpose: the reference calls scikit-learn's KMeans(2, random_state=0) once per
        split, ~2 ms each, 1,600 calls an epoch at K = 300. kit runs Lloyd's iterations (at most 20,
        as the reference) on all the groups at once, in float64 on the CPU, from a deterministic
        start: the two sides of the group's principal direction (a few power iterations from its
        farthest member). The second part is the side the principal direction points to. If 2-means
        leaves a side empty (identical features), a random split (generator seeded with
        `split_seed`) moves ceil(n/2), as the reference's fallback does."""
        sizes = torch.tensor([len(g) for g in groups])
        x = torch.nn.utils.rnn.pad_sequence(
            [g.detach().cpu().double() for g in groups], batch_first=True
        )
        # (G, n) which rows are not padding
        real = torch.arange(x.shape[1])[None, :] < sizes[:, None]
        w = real.double()[..., None]
        mean = (x * w).sum(1, keepdim=True) / sizes[:, None, None]
        xc = (x - mean) * w
        # start the power iteration at the member farthest from the mean
        far = (xc * xc).sum(2).argmax(1)
        v = xc[torch.arange(len(groups)), far]  # (G, D)
        for _ in range(8):
            v = torch.einsum("gnd,gn->gd", xc, torch.einsum("gnd,gd->gn", xc, v))
            v = v / v.norm(dim=1, keepdim=True).clamp(min=1e-300)
        side = (torch.einsum("gnd,gd->gn", xc, v) > 0) & real
        for _ in range(iters):
            first, second = (~side).double()[..., None] * w, side.double()[..., None] * w
            # (G, 2, D)
            centres = torch.stack(
                [(x * m).sum(1) / m.sum(1).clamp(min=1) for m in (first, second)], 1
            )
            # (G, n) each: a row's own sum over D
            d = [((x - centres[:, k, None]) ** 2).sum(2) for k in (0, 1)]
            new = (d[1] < d[0]) & real  # ties stay with the first part
            if torch.equal(new, side):
                break
            side = new
        masks = []
        for g, s, n in zip(groups, side, sizes.tolist()):
            s = s[:n]
            # the reference keeps floor(n/2) at random and moves the other ceil(n/2)
            if s.all() or not s.any():
                gen = torch.Generator().manual_seed(self.split_seed)
                s = torch.ones(n, dtype=torch.bool)
                s[torch.randperm(n, generator=gen)[: n // 2]] = False
            masks.append(s.to(g.device))
        return masks

    def _write(self, rows: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None = None,
               counted: torch.Tensor | None = None) -> None:
        """Give `rows` (R,) new labels (R,) and, if given, new features (R, D), moving their
        features out of their old clusters' sums and sizes and into the new ones'. Rows may repeat
        if every copy carries the same values and `counted` (R,) bool marks one copy of each (all
        rows by default). Sums and sizes move by index_add, never bincount or a mask, so nothing
        waits for the device."""
        self._keep_in_step()
        old_labels, old = self.labels[rows], self.features[rows]
        new = old if features is None else features
        # (R,) 1 for the rows that count
        w = torch.ones_like(rows) if counted is None else counted.long()
        self.sums.index_add_(0, old_labels, old.double() * -w[:, None])
        self.sums.index_add_(0, labels, new.double() * w[:, None])
        self.sizes.index_add_(0, labels, w)
        self.sizes.index_add_(0, old_labels, -w)
        self.labels[rows] = labels
        if features is not None:
            self.features[rows] = features
        self._in_step_with = self._versions()

    def _keep_in_step(self) -> None:
        """Rebuild sums and sizes from all N rows if features or labels were written by anything but
        `_write`: `init`, `load_state_dict` (old checkpoints hold no sums), a notebook or a test.
        Every in-place write bumps a tensor's version counter, so the check is free."""
        if self._in_step_with == self._versions():
            return
        self.sums.zero_()
        # in slices: a float64 copy of all N rows would double the memory
        for start in range(0, self.n_samples, 2**16):
            rows = slice(start, start + 2**16)
            self.sums.index_add_(0, self.labels[rows], self.features[rows].double())
        self.sizes.copy_(torch.bincount(self.labels, minlength=self.n_clusters))
        self._in_step_with = self._versions()

    def _versions(self) -> tuple:
        return (
            self.features.data_ptr(),
            self.features._version,
            self.labels.data_ptr(),
            self.labels._version,
        )


def _last_occurrence(idx: torch.Tensor) -> torch.Tensor:
    """For each position p of `idx`, the position of the last occurrence of idx[p]. (B,) -> (B,)
    Shapes never depend on the values (no mask, no nonzero), so nothing waits for the device."""
    b = idx.numel()
    pos = torch.arange(b, device=idx.device)
    order = torch.argsort(idx * b + pos)  # sort by value, then by position
    sorted_idx = idx[order]
    # the last of each run of equal values
    is_end = torch.ones(b, dtype=torch.bool, device=idx.device)
    is_end[:-1] = sorted_idx[1:] != sorted_idx[:-1]
    # (B,) each run's end, in sorted order
    end = torch.where(is_end, pos, b).flip(0).cummin(0).values.flip(0)
    last = torch.empty_like(pos)
    last[order] = order[end]
    return last
