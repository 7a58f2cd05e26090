"""What the fake card of tests/test_cuda_path.py could not see (issue 29), each pinned by a test
that failed before its fix: torch's newer precision API, state kit left behind in the process, bf16
reaching the ODC memory, the evaluation's models left on the CPU, and fp16's loss scaler (a wait
every step, a scale lost on resume)."""
import math

import numpy as np
import pytest
import torch

import kit
from conftest import tiny_dc_config, tiny_odc_config, tiny_trainer
from fake_cuda import FakeCuda
from kit.parts.runtime import full_precision

B = torch.backends
PER_BACKEND = hasattr(B, "fp32_precision")  # torch 2.9 and later
NEW_API = (
    [
        (B, "fp32_precision"),
        (B.cuda.matmul, "fp32_precision"),
        (B.cudnn, "fp32_precision"),
        (B.cudnn.conv, "fp32_precision"),
        (B.mkldnn, "fp32_precision"),
        (B.mkldnn.matmul, "fp32_precision"),
        (B.mkldnn.conv, "fp32_precision"),
    ]
    if PER_BACKEND
    else []
)
needs_per_backend = pytest.mark.skipif(
    not PER_BACKEND,
    reason="this torch has no per-backend precision settings "
    "(torch.backends.*.fp32_precision, torch 2.9 and later)",
)


def precision_now() -> list:
    """Every float32-precision setting torch has, read through the per-backend getters (they follow
    both APIs)."""
    return [getattr(obj, name) for obj, name in NEW_API]


@pytest.fixture
def torch_settings():
    """Puts back every process-wide setting these tests change, then checks the legacy calls read
    again as they did."""
    legacy = torch.get_float32_matmul_precision(), B.cudnn.allow_tf32, B.cudnn.benchmark
    yield
    torch.set_float32_matmul_precision(legacy[0])
    B.cudnn.allow_tf32, B.cudnn.benchmark = legacy[1], legacy[2]
    for (obj, name), value in zip(NEW_API, DEFAULTS):
        setattr(obj, name, value)
    assert (torch.get_float32_matmul_precision(), B.cudnn.allow_tf32, B.cudnn.benchmark) == legacy
    assert precision_now() == DEFAULTS


DEFAULTS = precision_now()  # as the test session found them


@pytest.fixture
# one per test: a dataset keeps its normalisation on the device it last fed, here a card that goes
# away
def digits():
    return kit.load_dataset("digits", n=300)


def small_net(dataset, neck: bool = False):
    c, h, _ = dataset.image_shape
    torch.manual_seed(0)
    bb = kit.build_backbone("convnet", c, image_size=h)
    return kit.ClusterNet(bb, 10, kit.parts.models.ODCNeck(bb.feature_dim) if neck else None)


# -- item 1: torch's per-backend precision API -----------------------------------------------------
@needs_per_backend
def test_kit_runs_under_the_per_backend_precision_api_and_leaves_it_as_set(torch_settings, digits):
    """A user (or transformers) set TF32 through `torch.backends.*.fp32_precision`: kit's legacy
    calls raised "mix of the legacy and new APIs" in extract_features, k-means and the ODC
    memory."""
    net = small_net(digits)
    exact = kit.extract_features(net, digits)
    B.cuda.matmul.fp32_precision, B.cudnn.conv.fp32_precision = "tf32", "tf32"
    chosen = precision_now()
    feats = kit.extract_features(net, digits)  # on the CPU
    labels = kit.KMeans(5, n_iter=5, seed=0).fit(torch.as_tensor(feats)).labels_
    mem = kit.ODCMemory(
        n_samples=len(feats), dim=feats.shape[1], n_clusters=5, momentum=0.5, min_cluster_size=0
    )
    mem.init(feats, torch.as_tensor(labels))
    mem.update(torch.arange(8), torch.as_tensor(feats[:8]))
    assert precision_now() == chosen  # the user's choice, as they made it
    np.testing.assert_array_equal(feats, exact)
    with FakeCuda(capability=(9, 0)):  # an H100: TF32 is what these settings ask for there
        inside = []
        with full_precision("cuda"):
            inside = precision_now()
        on_card = kit.extract_features(net.to("cuda"), digits)
    # exact while kit held them, then given back
    assert inside[1] == inside[3] == "ieee" and precision_now() == chosen
    np.testing.assert_allclose(on_card, exact, rtol=1e-5, atol=1e-6)  # TF32 would be ~1e-3 off


@needs_per_backend
def test_a_convolution_only_per_backend_setting_is_held_through_that_api(torch_settings):
    """Only `cudnn.conv.fp32_precision` set: the legacy matmul reads still work but
    `cudnn.allow_tf32` raises."""
    B.cudnn.conv.fp32_precision = "tf32"
    B.cudnn.rnn.fp32_precision = "ieee"
    chosen = precision_now()
    with full_precision("cuda"):
        assert B.cudnn.conv.fp32_precision == "ieee"
    assert precision_now() == chosen


def test_each_setting_is_given_back_when_its_own_last_holder_ends_and_re_applied_by_the_next(
    torch_settings,
):
    """A fit holds the autotuner for its whole length; TF32 came back only when the fit ended. And a
    user who turned TF32 on mid-hold had the next `full_precision` run in TF32."""
    from kit.parts.runtime import tuned_convolutions

    torch.set_float32_matmul_precision("high")
    with tuned_convolutions(torch.device("cuda")):  # a fit on a card, in another thread
        with full_precision("cuda"):
            assert torch.get_float32_matmul_precision() == "highest"
        # TF32 back, the fit goes on
        assert torch.get_float32_matmul_precision() == "high" and B.cudnn.benchmark
        with full_precision("cuda"):
            torch.set_float32_matmul_precision("medium")  # the user's cell, while kit holds it
            with full_precision("cuda"):  # kit's next call needs float32 again
                assert torch.get_float32_matmul_precision() == "highest"


# -- item 4: state left in the user's process ------------------------------------------------------
def test_precision_held_by_two_kit_calls_at_once_is_given_back_as_the_user_set_it(torch_settings):
    """The playground's thread and a cell both inside `full_precision`: the first out used to
    restore the user's TF32 under the second (its clustering then ran in TF32), and the last out put
    back "highest" for good."""
    torch.set_float32_matmul_precision("high")  # the user's TF32
    first, second = full_precision("cuda"), full_precision("cuda")
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # not in the order they came: two threads
    # the second still holds
    assert torch.get_float32_matmul_precision() == "highest" and not B.cudnn.allow_tf32
    second.__exit__(None, None, None)
    assert torch.get_float32_matmul_precision() == "high" and B.cudnn.allow_tf32
    with full_precision("cuda"):
        torch.set_float32_matmul_precision("medium")  # the user's cell changes it meanwhile
    assert torch.get_float32_matmul_precision() == "medium"  # their newer choice stays


def test_on_the_cpu_full_precision_changes_no_process_wide_setting(torch_settings):
    """With torch's defaults the CPU has nothing to make exact: the playground's thread then touches
    nothing the user's cells read (cuDNN's TF32 flag, on by default, used to be switched off and on
    from that thread)."""
    before = precision_now(), B.cudnn.allow_tf32
    with full_precision("cpu"):
        assert (precision_now(), B.cudnn.allow_tf32) == before


@pytest.mark.parametrize("algo", ["deepcluster", "odc", "deepcluster-v2"])
def test_a_fit_on_the_card_tunes_convolutions_only_while_it_trains(torch_settings, digits, algo):
    B.cudnn.benchmark = False
    seen = []
    with FakeCuda(capability=(9, 0)):
        tiny_trainer(algo, device="cuda", n_clusters=10).fit(
            digits,
            epochs=1,
            callback=lambda r: seen.append(B.cudnn.benchmark) if r["kind"] == "step" else None,
        )
    assert seen and all(seen)  # the autotuner while it trained
    assert B.cudnn.benchmark is False  # and the user's setting after


# -- item 3: the ODC memory takes float32 features -------------------------------------------------
def test_the_neck_and_head_run_in_float32_under_a_training_autocast(digits):
    net = small_net(digits, neck=True).train()
    x = digits.batch(torch.arange(16), torch.device("cpu"), train=False)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = net.backbone(x)
        z, logits = net(x)
    assert h.dtype == torch.bfloat16  # the backbone is autocast's
    assert z.dtype == logits.dtype == torch.float32
    torch.manual_seed(1)  # the neck's dropout draws the same mask
    expected = net.neck(h.float())
    # a float32 neck on the backbone's output
    torch.testing.assert_close(z, expected, rtol=0, atol=0)


def test_odc_writes_float32_neck_features_into_its_memory_under_autocast(digits, monkeypatch):
    """`ODC._epoch` passed the autocast forward's bf16 neck output to `memory.update` (README: the
    memory stays float32). A CPU bf16 autocast plays the card's."""
    from kit.algorithms import odc
    from kit.algorithms.memory import ODCMemory

    monkeypatch.setattr(odc, "autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    dtypes, update = [], ODCMemory.update
    monkeypatch.setattr(
        ODCMemory, "update", lambda self, idx, z: dtypes.append(z.dtype) or update(self, idx, z)
    )
    h = kit.ODC(tiny_odc_config(n_clusters=10)).fit(digits, epochs=1)
    assert dtypes and set(dtypes) == {torch.float32}
    assert math.isfinite(h["epoch"][-1]["loss"])


# -- item 7: fp16's loss scaler --------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["deepcluster", "odc", "deepcluster-v2"])
def test_a_t4_step_waits_for_the_card_no_more_than_a_bf16_one(digits, algo):
    """`GradScaler.step` read its inf check with `.item()`: one wait more a step in fp16 than in
    bf16. The fused SGD reads it on the device."""
    from test_cuda_path import StepSyncs

    per_step = {}
    for capability in ((9, 0), (7, 5)):  # an H100 (bf16, no scaler), a T4 (fp16 and its scaler)
        with FakeCuda(capability=capability) as card:
            counter = StepSyncs(card)
            trainer = tiny_trainer(algo, device="cuda", n_clusters=10)
            h = trainer.fit(digits, epochs=2, callback=counter)
        assert trainer.scaler.is_enabled() == (capability < (8, 0)) and math.isfinite(
            h["epoch"][-1]["loss"]
        )
        per_step[capability] = counter.per_step()
    assert per_step[(7, 5)] <= per_step[(9, 0)], (per_step, dict(card.sync_sites))


def test_the_loss_scale_is_checkpointed_and_resumed(digits, tmp_path):
    """A resume restarted fp16's scale at 2^16: steps skipped until it backed off again."""
    with FakeCuda(capability=(7, 5)):
        dc = kit.DeepCluster(tiny_dc_config(device="cuda", n_clusters=10))
        run = kit.Run.create(tmp_path, "deepcluster")
        dc.fit(digits, epochs=1, run=run)
        dc.scaler.update(new_scale=512.0)  # where a run that overflowed a few times would be
        dc.save(run)
        again = kit.DeepCluster(tiny_dc_config(device="cuda", n_clusters=10))
        again.resume(kit.Run.create(tmp_path, "deepcluster", resume=True), digits)
        assert again.scaler.get_scale() == 512.0
    # a CPU resume of it: no scaler, nothing to load
    on_cpu = kit.DeepCluster(tiny_dc_config(n_clusters=10))
    on_cpu.resume(kit.Run.create(tmp_path, "deepcluster", resume=True), digits)
    assert not on_cpu.scaler.is_enabled()


# -- item 6: torchrun on GPUs ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "backbone, setting, synced",
    [
        ("convnet", None, False),
        ("resnet18", None, False),
        ("resnet50", None, True),
        ("resnet18", True, True),
        ("resnet50", False, False),
    ],
)
def test_syncbatchnorm_is_a_setting_on_by_default_for_resnet50_only(
    backbone, setting, synced, monkeypatch
):
    """SyncBatchNorm waits for the host in every BN layer's forward: on by default only where the
    published recipe's small per-GPU batches need it. The trainer hands `wrap` the resolved
    choice."""
    from kit.parts.distributed import Distributed
    from kit.algorithms.training import synced_batchnorm

    cfg = tiny_dc_config(backbone=backbone, sync_batchnorm=setting)
    assert synced_batchnorm(cfg) is synced
    asked = []
    monkeypatch.setattr(
        Distributed, "wrap", lambda self, model, device, sync=False: asked.append(sync) or model
    )
    from test_cuda_path import colour_images

    kit.DeepCluster(cfg).setup(colour_images(64, 32))  # 32 px: ResNet-50's smallest
    assert asked == [synced]


def test_the_global_loss_normaliser_is_made_on_the_card(card, monkeypatch):
    """`Distributed.cross_entropy` built the target count on the host and copied it over every
    step."""
    from kit.parts.distributed import Distributed

    # one rank's view of two
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t, *a, **k: None)
    two = Distributed.__new__(Distributed)
    two.rank, two.world, two.backend, two.comm_device = 0, 2, "nccl", torch.device("cuda", 0)
    logits, y = torch.randn(8, 5).to("cuda"), torch.randint(0, 5, (8,)).to("cuda")
    before = card.total()
    loss, value = two.cross_entropy(logits, y)
    assert card.total() == before, dict(card.sync_sites)
    torch.testing.assert_close(value.elem, torch.nn.functional.cross_entropy(logits.elem, y.elem))


def test_gathering_odcs_batch_reads_no_rank_size_on_the_host(card, monkeypatch):
    """ODC's memory applies every rank's batch: the gather read each rank's size with `int()`, a
    wait every step. Here rank 0 of 2 holds 5 rows and rank 1 (its all-gather played by a stub) 4:
    padded to 5, marked by `real`."""
    import kit.parts.distributed as kd

    monkeypatch.setattr(kd, "world", lambda: (0, 2))

    def all_gather(out, t, *a, **k):  # rank 1 sends rank 0's rows + 100 and one row fewer
        out[0].copy_(t)
        out[1].copy_(t.new_full(t.shape, 4) if t.numel() == 1 else t + 100)

    monkeypatch.setattr(torch.distributed, "all_gather", all_gather)
    idx, z = torch.arange(5).to("cuda"), torch.arange(10.0).reshape(5, 2).to("cuda")
    before = card.total()
    idx_all, z_all, real = kd.all_gather_batch(idx, z, rows=5)
    assert card.total() == before, dict(card.sync_sites)
    assert idx_all.elem.tolist() == [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]
    assert real.elem.tolist() == [True] * 9 + [False]  # rank 1's fifth row is padding
    # a short last batch repeats its last row
    short, _, real = kd.all_gather_batch(idx[:3], z[:3], rows=5)
    assert (
        short.elem.tolist() == [0, 1, 2, 2, 2, 100, 101, 102, 102, 102]
        and real.elem.sum().item() == 7
    )


def test_a_rank_padded_batch_changes_the_memory_as_the_unpadded_batch_does():
    """Padding repeats a rank's last row: the same index with the same features, so the memory
    writes what it would have written, and the rows marked not real are left out of the change
    ratio."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=1)
    idx, z = torch.tensor([3, 7, 7, 12, 29]), torch.randn(5, 8, generator=g)
    padded = torch.tensor([True] * 5 + [False] * 3)
    plain, pad = (
        kit.ODCMemory(30, 8, 4, momentum=0.5, min_cluster_size=0, gather=gather)
        for gather in (
            None,
            lambda i, f: (
                torch.cat([i, i[-1:].expand(3)]),
                torch.cat([f, f[-1:].expand(3, 8)]),
                padded,
            ),
        )
    )
    for mem in (plain, pad):
        mem.init(x, torch.arange(30) % 4)
    assert pad.update(idx, z).item() == plain.update(idx, z).item() > 0
    for name, value in plain.state_dict().items():
        assert torch.equal(pad.state_dict()[name], value), name
    assert torch.equal(pad.sizes, plain.sizes) and torch.allclose(pad.sums, plain.sums)


def test_features_gather_on_rank_zero_one_share_at_a_time_and_reach_the_others_only_when_asked(
    monkeypatch,
):
    """Only rank 0 clusters and scores: an all-gather put N x D on every rank (and on every card
    three times over)."""
    from kit.parts.distributed import Distributed

    def rank(r):
        d = Distributed.__new__(Distributed)
        d.rank, d.world, d.backend, d.comm_device = r, 3, "gloo", torch.device("cpu")
        return d

    monkeypatch.setattr(
        torch.distributed,
        "all_gather",
        lambda *a, **k: pytest.fail("an all-gather of the features"),
    )
    x = np.arange(20, dtype=np.float32).reshape(10, 2)  # 10 rows over 3 ranks: 4, 3, 3
    sent = []
    monkeypatch.setattr(
        torch.distributed, "send", lambda t, dst: sent.append((dst, t.numpy().copy()))
    )
    for r, rows in ((1, slice(4, 7)), (2, slice(7, 10))):
        assert rank(r).gather_rows(x[rows], 10).shape == (0, 2)
    assert [d for d, _ in sent] == [0, 0]
    received = []

    def recv(t, src):
        received.append((src, tuple(t.shape)))
        t.copy_(torch.from_numpy(dict((s + 1, v) for s, (_, v) in enumerate(sent))[src]))

    monkeypatch.setattr(torch.distributed, "recv", recv)
    assert np.array_equal(rank(0).gather_rows(x[:4], 10), x)
    # one rank's share at a time, never N x D on the card
    assert received == [(1, (3, 2)), (2, (3, 2))]
    monkeypatch.setattr(torch.distributed, "broadcast", lambda t, src: t.copy_(torch.from_numpy(x)))
    # ODC's replicated memory: every rank gets rank 0's rows
    assert np.array_equal(rank(1).share(x[:0], 10), x)


# -- item 8: fewer launches a step -----------------------------------------------------------------
@pytest.mark.parametrize("algo", ["deepcluster", "odc", "deepcluster-v2"])
def test_a_compiled_step_trains_as_the_eager_step_does_and_only_inside_its_block(algo, digits):
    """`--compile` (`compiled_steps`) puts the training network under torch.compile. Traced here
    with aot_eager (the graph capture, its guards across the head's re-initialisations and the last
    batch's shape, and AOT autograd's backward), not inductor's code generation, which takes ~30 s a
    shape on this CPU: `make gpu-check` times that."""
    from kit.parts.runtime import compiled_steps

    eager = tiny_trainer(algo, n_clusters=10)
    with compiled_steps("aot_eager"):
        compiled = tiny_trainer(algo, n_clusters=10)
        got = compiled.fit(digits, epochs=2)
    want = eager.fit(digits, epochs=2)
    assert hasattr(compiled.net, "_orig_mod") and not hasattr(eager.net, "_orig_mod")
    np.testing.assert_allclose(got["step"]["loss"], want["step"]["loss"], rtol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(got["labels"], want["labels"]))
    after = tiny_trainer(algo, n_clusters=10)
    after.setup(digits)
    assert not hasattr(after.net, "_orig_mod")  # the block is closed: eager again


def test_the_resume_hint_keeps_every_flag_that_changes_how_the_run_goes(
    tmp_path, monkeypatch, capsys
):
    import kit.__main__ as cli

    monkeypatch.setattr(
        cli, "_train_or_compare", lambda a, name: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    assert (
        cli.main(["compare", "--name", "d", "--runs", str(tmp_path), "--tensorboard", "--compile"])
        == 130
    )
    assert capsys.readouterr().err.strip().endswith("--resume --tensorboard --compile")


# -- item 5: exactness on a GPU --------------------------------------------------------------------
def test_deterministic_holds_torchs_deterministic_settings_while_a_fit_runs_then_gives_them_back(
    torch_settings, digits
):
    from kit.parts.runtime import deterministic

    cudnn, seen = B.cudnn, []
    before = torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark
    with FakeCuda(capability=(9, 0)), deterministic():
        kit.DeepCluster(tiny_dc_config(device="cuda", n_clusters=10)).fit(
            digits,
            epochs=1,
            callback=lambda r: (
                seen.append(
                    (
                        torch.are_deterministic_algorithms_enabled(),
                        cudnn.deterministic,
                        cudnn.benchmark,
                    )
                )
                if r["kind"] == "step"
                else None
            ),
        )
    # no autotuner: it may pick another convolution next run
    assert seen and set(seen) == {(True, True, False)}
    assert (
        torch.are_deterministic_algorithms_enabled(),
        cudnn.deterministic,
        cudnn.benchmark,
    ) == before


def test_the_deterministic_flag_wraps_the_command_and_its_resume_hint_keeps_it(
    tmp_path, monkeypatch, capsys
):
    import kit.__main__ as cli

    seen = []

    def interrupted(a, name):
        seen.append(torch.are_deterministic_algorithms_enabled())
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_train_or_compare", interrupted)
    assert cli.main(["compare", "--name", "d", "--runs", str(tmp_path), "--deterministic"]) == 130
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()
    assert capsys.readouterr().err.strip().endswith("--resume --deterministic")


def test_a_rank_whose_odc_memory_drifted_takes_rank_zeros_at_the_end_of_the_epoch(monkeypatch):
    """Two cards' float atomics can relabel a near-tie differently, and nothing re-synced the ranks'
    memories. Rank 1 of 2, here in one process: its `broadcast` hands it rank 0's tensors, the
    all-reduce is its own."""
    from kit.parts.distributed import SINGLE, Distributed

    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(40, 8, generator=g), dim=1)
    labels = torch.arange(40) % 4
    rank0, rank1 = (kit.ODCMemory(40, 8, 4, momentum=0.5, min_cluster_size=0) for _ in range(2))
    for mem in (rank0, rank1):
        mem.init(x, labels)
    rank1.labels[7] = (rank1.labels[7] + 1) % 4  # the near-tie it called the other way
    rank1.features[7] *= 1.001
    assert rank1.agree(SINGLE) == 0  # one process: nothing to compare, nothing copied
    # rank 0 saw no difference: the MAX over ranks is rank 1's count, so both take the same branch
    ops = []
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t, op=None, **k: ops.append(op))
    one = Distributed.__new__(Distributed)
    one.rank, one.world, one.backend, one.comm_device = 1, 2, "gloo", torch.device("cpu")
    one.broadcast = lambda t: {id(rank1.labels): rank0.labels, id(rank1.features): rank0.features}[
        id(t)
    ].clone()
    assert rank1.agree(one) == 1
    assert torch.equal(rank1.labels, rank0.labels) and torch.equal(rank1.features, rank0.features)
    rank1.recompute_centroids()
    rank0.recompute_centroids()
    assert torch.equal(rank1.sizes, rank0.sizes) and torch.allclose(
        rank1.centroids, rank0.centroids
    )
    assert rank1.agree(one) == 0  # in step now: nothing copied again
    assert ops == [torch.distributed.ReduceOp.MAX] * 2


# -- item 8: fewer launches a step -----------------------------------------------------------------
@pytest.mark.parametrize("algo", ["deepcluster", "odc", "deepcluster-v2"])
def test_the_sgd_step_dispatches_at_most_two_ops_per_parameter_group_on_the_cpu(digits, algo):
    """torch's default SGD on the CPU loops over the parameters: 62 of a DeepCluster step's 233 ops
    on the small preset (bench/step_ops.py). The fused SGD dispatches one kernel per group."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        n, on = 0, False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += self.on
            return func(*args, **(kwargs or {}))

    trainer = tiny_trainer(algo, n_clusters=10)
    trainer.setup(digits)
    counter, step, calls = Ops(), trainer.optimizer.step, []

    def counted(*args, **kwargs):
        counter.on = True
        try:
            return step(*args, **kwargs)
        finally:
            counter.on = False
            calls.append(counter.n)

    trainer.optimizer.step = counted
    with counter:
        trainer.fit(digits, epochs=1)
    # the first step also makes the momentum buffers
    per_step = (calls[-1] - calls[0]) / (len(calls) - 1)
    assert len(trainer.optimizer.param_groups) == 2 and per_step <= 2 * len(
        trainer.optimizer.param_groups
    ), per_step


def test_the_fused_sgd_step_gives_the_plain_steps_parameters_bit_for_bit_on_the_cpu(digits):
    net = small_net(digits, neck=True)
    runs = []
    for fused_step in (False, True):
        model = kit.ClusterNet(kit.build_backbone("convnet", 1, image_size=16), 10,
                               kit.parts.models.ODCNeck(net.backbone.feature_dim))
        model.load_state_dict(net.state_dict())
        opt = kit.algorithms.training.build_optimizer(
            model, tiny_dc_config(), fused_step=fused_step
        )
        assert opt.param_groups[0].get("fused") is (True if fused_step else None)
        g = torch.Generator().manual_seed(0)
        for _ in range(20):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_checkpoint_from_before_fused_sgd_resumes_on_a_t4(digits, tmp_path):
    """A checkpoint's param groups say `fused: None`: loaded as they were, they switched the step
    back to the plain SGD under a scaler built for the fused one, and the first fp16 step raised."""
    with FakeCuda(capability=(7, 5)):
        run = kit.Run.create(tmp_path, "deepcluster")
        kit.DeepCluster(tiny_dc_config(device="cuda", n_clusters=10)).fit(digits, epochs=1, run=run)
        state = torch.load(run.file("checkpoint.pt"), weights_only=False)
        for group in state["optimizer"]["param_groups"]:
            group["fused"] = None  # as kit wrote them before
        del state["scaler"]
        torch.save(state, run.file("checkpoint.pt"))
        again = kit.DeepCluster(tiny_dc_config(device="cuda", n_clusters=10))
        h = again.fit(digits, epochs=2, run=kit.Run.create(tmp_path, "deepcluster", resume=True))
    assert all(g["fused"] for g in again.optimizer.param_groups) and math.isfinite(
        h["epoch"][-1]["loss"]
    )
