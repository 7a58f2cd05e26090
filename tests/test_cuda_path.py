"""kit's CUDA path, proven on the CPU (issue 18): `tests/fake_cuda.py` plays the card and fails
where one would.

Each test names the item of issue 18 it pins; each failed on the code before that issue (a device
tensor meeting a host tensor, a sync too many per step, a bf16 autocast on a T4, a resume with fewer
cards). The real-card versions of these checks are the `gpu`-marked tests in tests/test_gpu.py.
"""
import math

import numpy as np
import pytest
import torch

import kit
from conftest import tiny_dc_config, tiny_odc_config, tiny_trainer
from fake_cuda import DeviceTensor, FakeCuda
from kit.parts.augment import COLOUR
from kit.parts.data import ImageTensorDataset
from kit.parts.metrics import knn_accuracy

CUDA = torch.device("cuda", 0)


@pytest.fixture(scope="module")
def digits():
    return kit.load_dataset("digits", n=300)  # scikit-learn's digits, 16 px: nothing is downloaded


def colour_images(n: int = 256, size: int = 16) -> ImageTensorDataset:
    """Random colour images with CIFAR-10's statistics and the colour augmentation (hue, saturation,
    grayscale)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return ImageTensorDataset(
        images,
        torch.randint(0, 10, (n,), generator=g),
        (0.49, 0.48, 0.45),
        (0.25, 0.24, 0.26),
        "colour",
        COLOUR,
    )


def small_net(dataset, neck: bool = False):
    c, h, _ = dataset.image_shape
    torch.manual_seed(0)
    return kit.ClusterNet(kit.build_backbone("convnet", c, image_size=h), 10)


# -- item 1: evaluation protocols ------------------------------------------------------------------
def test_finetune_and_stage_features_run_on_the_backbones_card(card, digits):
    from kit.analysis import evaluate as ev

    test = kit.load_dataset("digits", split="test", n=100)
    bb = small_net(digits).backbone.to(CUDA)
    # ytr[b] on the card
    r = ev.finetune(bb, digits, test, fraction=0.2, lr=0.01, head_mult=10, steps=4, batch_size=32)
    assert 0 <= r.top1 <= 100
    stages = ev.stage_features(bb, test)
    assert len(stages) == 6 and all(
        not isinstance(s, DeviceTensor) and len(s) == len(test) for s in stages
    )
    assert next(bb.parameters()).device == CUDA  # nothing moved the caller's backbone


# -- item 2: library calls the notebooks make ------------------------------------------------------
def test_extract_features_runs_where_the_model_is(card, digits):
    net = small_net(digits)  # built on the CPU, as notebook 02 builds it, while a card is present
    on_cpu = kit.extract_features(net, digits)
    assert on_cpu.shape == (len(digits), net.backbone.feature_dim)
    on_card = kit.extract_features(net.to(CUDA), digits)
    np.testing.assert_allclose(on_card, on_cpu, rtol=1e-5, atol=1e-6)


def test_features_for_clustering_stay_float32_under_autocast_and_tf32(card, digits):
    net = small_net(digits)
    exact = kit.extract_features(net, digits)
    net.to(CUDA)
    # what Lightning and many notebooks set on an Ampere card
    torch.set_float32_matmul_precision("high")
    try:
        # a caller's autocast must not reach them either
        with torch.autocast("cuda", dtype=torch.bfloat16):
            feats = kit.extract_features(net, digits)
    finally:
        torch.set_float32_matmul_precision("highest")
    # bf16 or TF32 would be ~1e-3 off
    np.testing.assert_allclose(feats, exact, rtol=1e-5, atol=1e-6)


def test_the_memory_relabels_in_float32_even_when_tf32_is_allowed(card):
    u = torch.nn.functional.normalize(torch.arange(1.0, 9.0), dim=0)  # (8,)
    mem = kit.ODCMemory(n_samples=4, dim=8, n_clusters=2, momentum=0.5, min_cluster_size=0)
    mem.init(u.repeat(4, 1), torch.tensor([0, 0, 1, 1]))
    mem.to(CUDA)
    # a near-tie that TF32's 10-bit mantissa erases
    mem.centroids.copy_(torch.stack([u, u * (1 + 1e-5)]).to(CUDA))
    torch.set_float32_matmul_precision("high")
    try:
        mem.update(torch.tensor([0]), u[None].to(CUDA))
    finally:
        torch.set_float32_matmul_precision("highest")
    # float32 sees centroid 1 ahead by 1e-5; TF32 would call it a tie (label 0)
    assert mem.labels.cpu()[0] == 1


# -- item 3: resume on a machine with fewer cards --------------------------------------------------
def test_a_run_from_an_eight_gpu_machine_resumes_on_one(digits, tmp_path):
    with FakeCuda(count=8):
        dc = kit.DeepCluster(tiny_dc_config(device="cuda", n_clusters=10))
        dc.fit(digits, epochs=1, run=kit.Run.create(tmp_path, "deepcluster"))
    with FakeCuda(count=1):
        again = kit.DeepCluster(tiny_dc_config(device="cuda", n_clusters=10))
        h = again.fit(digits, epochs=2, run=kit.Run.create(tmp_path, "deepcluster", resume=True))
    assert len(h["epoch"]) == 2 and math.isfinite(h["epoch"][-1]["loss"])


# -- item 4: torchrun against the cards there are --------------------------------------------------
# kit.commands.launch.torchrun(nproc=2) on one T4
# every rank on GPU 1, collectives on cuda:LOCAL_RANK
@pytest.mark.parametrize("device, cards, message", [
    ("auto", 1, "2 processes on this machine, which has 1 GPU"),
    ("cuda:1", 2, "--device cuda:1 under torchrun"),
])
def test_torchrun_refuses_more_processes_than_cards_in_one_line(
    monkeypatch, device, cards, message
):
    from kit.parts import distributed

    for k, v in {
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(
        torch.distributed, "init_process_group", lambda *a, **k: pytest.fail("joined a group")
    )
    with FakeCuda(count=cards), pytest.raises(ValueError, match=message) as e:
        distributed.setup(device)
    assert "\n" not in str(e.value)


def test_each_torchrun_process_takes_its_share_of_the_cpus(monkeypatch):
    """torchrun sets OMP_NUM_THREADS=1: PCA, k-means and the monitor would run on one core per
    machine."""
    from kit.parts import distributed

    for k, v in {
        "WORLD_SIZE": "4",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "4",
        "OMP_NUM_THREADS": "1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda *a, **k: None)
    monkeypatch.setattr(distributed, "available_cpus", lambda: 16)
    before = torch.get_num_threads()
    try:
        distributed.setup("cpu")
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


# -- item 5: precision chosen by the card ----------------------------------------------------------
@pytest.mark.parametrize(
    "capability, dtype",
    [((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)],
)
def test_precision_follows_the_card(capability, dtype):
    from kit.parts.runtime import amp_dtype, grad_scaler

    with FakeCuda(capability=capability):
        assert amp_dtype(CUDA) == dtype
        assert grad_scaler(CUDA).is_enabled() == (dtype == torch.float16)
    assert amp_dtype(torch.device("cpu")) is None


@pytest.mark.parametrize("algo", ["deepcluster", "odc", "deepcluster-v2"])
def test_a_t4_trains_in_fp16_with_a_loss_scaler(algo, digits):
    with FakeCuda(capability=(7, 5)):  # a bf16 autocast raises here: the T4 has no native bf16
        trainer = tiny_trainer(algo, device="cuda", n_clusters=10)
        h = trainer.fit(digits, epochs=1)
    assert trainer.scaler.is_enabled() and math.isfinite(h["epoch"][-1]["loss"])


# -- item 6: host-device syncs per training step ---------------------------------------------------
class StepSyncs:
    """A `fit` callback that reads the card's sync count at the first and last step record of the
    second epoch."""

    def __init__(self, card: FakeCuda):
        self.card, self.marks, self.steps = card, [], 0

    def __call__(self, record: dict) -> None:
        if record["kind"] == "step" and record["epoch"] == 1:
            self.steps += 1
            self.marks.append(self.card.total())

    def per_step(self) -> float:
        """Waits over the epoch's steps; a step's record comes when its numbers are read, so the
        first record of the epoch already counts the one wait that fetched it (and the epoch's
        one-off copies before it)."""
        return (self.marks[-1] - self.marks[0]) / (self.steps - 1)


@pytest.mark.parametrize("data", ["digits", "colour"])
@pytest.mark.parametrize(
    "algo, budget", [("deepcluster", 1 / 2), ("odc", 2), ("deepcluster-v2", 1 / 2)]
)
def test_sync_budget_per_training_step(card, digits, algo, budget, data, monkeypatch):
    """DeepCluster reads its steps' losses together, once every READ_EVERY steps (2 here; each step
    read its own loss before); ODC waits at most twice a step, since the small-cluster fix branches
    on the memory's sizes every iteration, as the reference's does."""
    import kit.algorithms.training

    monkeypatch.setattr(kit.algorithms.training, "READ_EVERY", 2)
    dataset = digits if data == "digits" else colour_images()
    counter = StepSyncs(card)
    tiny_trainer(algo, device="cuda", n_clusters=10).fit(dataset, epochs=2, callback=counter)
    per_step = counter.per_step()
    print(
        f"\n{algo} on {data}: {per_step:.2f} host-device syncs per training step (budget {budget})"
    )
    assert counter.steps >= 4
    assert per_step <= budget, dict(card.sync_sites)


def test_the_supervised_baseline_steps_as_the_trainers_do(card, digits):
    """bench/gpu_check.py times a supervised epoch against the trainers' epochs: the same syncs per
    step."""
    from kit.algorithms.supervised import supervised_epoch

    net = small_net(digits).to(CUDA)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    before = card.total()
    loss = supervised_epoch(net, opt, digits, torch.arange(256), 64, digits.targets.to(CUDA), CUDA)
    # one read for the 4 steps, plus the epoch's copies
    assert math.isfinite(loss) and card.total() - before <= 1 + 2


# -- item 7: the monitor's kNN stays on the card ---------------------------------------------------
def test_knn_accuracy_runs_on_the_device_of_its_features(card):
    g = torch.Generator().manual_seed(0)
    ftr, fte = torch.randn(200, 16, generator=g), torch.randn(50, 16, generator=g)
    ytr, yte = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 4, (50,), generator=g)
    expected = knn_accuracy(ftr.numpy(), ytr.numpy(), fte.numpy(), yte.numpy(), k=10)
    before = dict(card.syncs)
    got = knn_accuracy(ftr.to(CUDA), ytr.to(CUDA), fte.to(CUDA), yte.to(CUDA), k=10, n_classes=4)
    assert got == expected
    # nothing went back but the count
    assert card.syncs["device-to-host copy"] == before.get("device-to-host copy", 0)


def test_image_folders_are_decoded_in_workers(tmp_path, monkeypatch):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.new("RGB", (12, 12), (40 * i, 80, 120)).save(tmp_path / c / f"{i}.png")
    folder = kit.load_dataset("imagefolder", root=tmp_path, image_size=8)
    seen = []
    real = torch.utils.data.DataLoader

    def loader(*args, **kwargs):
        seen.append((kwargs.get("num_workers", 0), kwargs.get("persistent_workers", False)))
        # decode here
        return real(*args, **{**kwargs, "num_workers": 0, "persistent_workers": False})

    monkeypatch.setattr(torch.utils.data, "DataLoader", loader)
    net = kit.ClusterNet(kit.build_backbone("convnet", 3, image_size=8), 4)
    first = kit.extract_features(net, folder, num_workers=3)
    # the same loader: its workers persist (issue 29)
    again = kit.extract_features(net, folder, num_workers=3)
    assert seen == [(3, True)] and np.array_equal(first, again)


# -- item 8: the exactness tests stay on the CPU beside a card -------------------------------------
def test_the_tests_tiny_configs_stay_on_the_cpu_when_a_card_is_there(card):
    assert kit.DeepCluster(tiny_dc_config()).device.type == "cpu"
    assert kit.ODC(tiny_odc_config()).device.type == "cpu"
    # where nothing is pinned, the card is used, by its index
    assert kit.resolve_device("auto") == CUDA


# -- the harness itself fails where a card would ---------------------------------------------------
def test_the_harness_refuses_what_a_card_refuses(card):
    x = torch.ones(4).to(CUDA)
    with pytest.raises(RuntimeError, match="same device"):
        x + torch.ones(4)  # a host tensor in a device op
    with pytest.raises(RuntimeError, match="indices should be"):
        torch.arange(4)[torch.tensor([1, 2]).to(CUDA)]  # a host tensor, device indices
    with pytest.raises(TypeError, match="cuda:0 device type tensor to numpy"):
        x.numpy()
    assert (x * 2 + torch.tensor(1.0)).sum().item() == 12  # a 0-d host scalar is fine, as on CUDA
    before = card.total()
    x[x > 0]  # a boolean mask: one wait for the device
    assert card.total() - before == 1


# -- the commands, on the card ---------------------------------------------------------------------
@pytest.mark.slow
def test_compare_train_resume_and_evaluate_with_device_cuda(card, tmp_path, capsys, monkeypatch):
    """`compare` / `--resume` / `train` / `evaluate` with --device cuda, in this process, through
    the card. The report is left out: it reads the run's files and touches no device
    (tests/test_compare.py builds one), and its figures were two thirds of this test's time."""
    from kit.__main__ import main
    from kit.commands import report

    reported = []

    def page_only(path, log=print, **_):  # an empty page: the run's report stays current
        reported.append(path)
        (path / "report.html").write_text("")
        return path / "report.html"

    monkeypatch.setattr(report, "build_report", page_only)
    from kit.analysis import evaluate as ev

    # the device of every model the evaluation extracts from (issue 29, item 2)
    stages, where = ev.stage_features, []
    monkeypatch.setattr(
        ev,
        "stage_features",
        lambda bb, ds, **k: where.append(next(bb.parameters()).device.type) or stages(bb, ds, **k),
    )

    runs = str(tmp_path)
    small = ["--dataset", "digits", "--n-train", "200", "--runs", runs]
    assert main(["compare", "--device", "cuda", "--epochs", "1", "--name", "gpu", *small]) == 0
    assert main(["compare", "--name", "gpu", "--runs", runs, "--resume", "--epochs", "2"]) == 0
    assert (
        main(
            ["train", "--algo", "odc", "--device", "cuda", "--epochs", "1", "--name", "one", *small]
        )
        == 0
    )
    monkeypatch.setenv("KIT_FAST", "1")  # the smoke evaluation: every protocol, a few steps of each
    assert main(["evaluate", str(tmp_path / "gpu"), "--finetune-steps", "2"]) == 0
    run = tmp_path / "gpu"
    for algo in ("deepcluster", "odc"):
        state = torch.load(run / algo / "checkpoint.pt", weights_only=True)
        # the run's own card, saved
        assert state["epoch"] == 2 and set(state["rng"]) == {"cpu", "cuda"}
    assert (run / "evaluation.json").exists() and card.syncs["item"] > 0  # it ran on the card
    # random init, DeepCluster, ODC and supervised, train and test: all on the card
    assert where == ["cuda"] * 8
    assert reported == [run] * 3  # after the compare, its resume and the evaluation
