"""The fake card's own tests (issue 30): tests/fake_cuda.py must fail where a real card would, or
the CUDA-path tests that rely on it (test_cuda_path.py, test_cuda_faults.py) prove nothing. The
refusals are CUDA's own, in its words, but bf16 below Ampere, which a real T4 runs by emulation,
several times slower: the fake refuses it in words of its own, so that kit's precision choice is
tested."""
import pytest
import torch

from fake_cuda import FakeCuda, _round_tf32


def test_the_card_is_there_and_tensors_on_it_say_so():
    # a GPU machine's own answer, restored after
    real = (torch.cuda.is_available(), torch.cuda.device_count())
    with FakeCuda(capability=(7, 5), count=2) as card:
        assert torch.cuda.is_available() and torch.cuda.device_count() == 2
        assert torch.cuda.get_device_capability() == (7, 5) and card.name == "Tesla T4"
        x = torch.ones(3).to("cuda")
        assert x.device == torch.device("cuda", 0) and x.is_cuda
        # computed, on the CPU, with the right values
        assert torch.equal((x * 2).cpu(), torch.full((3,), 2.0))
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            torch.ones(1).to("cuda:2")
    assert not isinstance(torch.ones(1), type(x))  # nothing of the card outlives the block
    assert (torch.cuda.is_available(), torch.cuda.device_count()) == real


@pytest.mark.parametrize("mix", ["host operand", "two cards", "host indexed by device indices"])
def test_tensors_on_two_devices_in_one_op_are_refused_as_cuda_refuses_them(mix):
    with FakeCuda(count=2):
        a = torch.ones(4, device="cuda")
        with pytest.raises(RuntimeError, match="same device"):
            if mix == "host operand":
                a + torch.ones(4)
            elif mix == "two cards":
                a + torch.ones(4).to("cuda:1")
            else:
                torch.arange(4)[torch.tensor([0, 1], device="cuda")]


def test_a_host_scalar_may_meet_a_device_tensor_as_on_a_card():
    with FakeCuda():
        a = torch.ones(2, device="cuda")
        assert torch.equal((a * torch.tensor(3.0)).cpu(), torch.full((2,), 3.0))


def test_a_device_tensor_reaches_numpy_only_through_the_host():
    with FakeCuda():
        a = torch.ones(2, device="cuda")
        with pytest.raises(TypeError, match="Use Tensor.cpu"):
            a.numpy()
        assert a.cpu().numpy().tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "op, kind",
    [
        (lambda a: a.sum().item(), "item"),
        (lambda a: a.tolist(), "item"),
        (lambda a: a.cpu(), "device-to-host copy"),
        (lambda a: a[a > 0], "boolean mask"),
        (lambda a: torch.nonzero(a), "nonzero"),
        (lambda a: a.long().bincount(), "bincount"),
        (lambda a: torch.unique(a), "unique"),
        (lambda a: bool(a.sum()), "item"),
    ],
)
def test_every_wait_for_the_card_is_counted_by_kind(op, kind):
    with FakeCuda() as card:
        a = torch.arange(4.0, device="cuda")
        before = card.syncs[kind]
        op(a)
        assert card.syncs[kind] == before + 1, dict(card.syncs)


def test_device_work_without_a_read_waits_for_nothing():
    with FakeCuda() as card:
        a = torch.randn(8, 8).to("cuda", non_blocking=True)
        before = card.total()
        b = (a @ a.T).softmax(1).argmax(1)
        torch.zeros(8, device="cuda").index_add_(0, b, torch.ones(8, device="cuda"))
        assert card.total() == before, dict(card.syncs)


def test_bf16_autocast_is_refused_below_ampere_and_rounds_on_ampere():
    x, w = torch.randn(4, 16), torch.randn(16, 4)
    with FakeCuda(capability=(7, 5)):
        a, b = x.to("cuda"), w.to("cuda")
        with (
            pytest.raises(RuntimeError, match="no native bf16"),
            torch.autocast("cuda", dtype=torch.bfloat16),
        ):
            a @ b
        with torch.autocast("cuda", dtype=torch.float16):
            half = (a @ b).cpu()
    # the inputs rounded to fp16
    assert torch.allclose(half, x.half().float() @ w.half().float(), atol=1e-5)
    with FakeCuda(capability=(9, 0)), torch.autocast("cuda", dtype=torch.bfloat16):
        bf = (x.to("cuda") @ w.to("cuda")).cpu()
    assert torch.allclose(bf, x.bfloat16().float() @ w.bfloat16().float(), atol=1e-5)


def test_ampere_rounds_float32_matmuls_to_tf32_unless_the_precision_is_highest():
    x, w = torch.randn(32, 64), torch.randn(64, 8)
    exact = x @ w
    before = torch.get_float32_matmul_precision()
    try:
        with FakeCuda(capability=(8, 0)):
            torch.set_float32_matmul_precision("high")
            tf32 = (x.to("cuda") @ w.to("cuda")).cpu()
            torch.set_float32_matmul_precision("highest")
            full = (x.to("cuda") @ w.to("cuda")).cpu()
        with FakeCuda(capability=(7, 5)):
            torch.set_float32_matmul_precision("high")
            turing = (x.to("cuda") @ w.to("cuda")).cpu()  # no TF32 before Ampere
    finally:
        torch.set_float32_matmul_precision(before)
    assert torch.equal(tf32, _round_tf32(x) @ _round_tf32(w)) and not torch.allclose(
        tf32, exact, atol=1e-5
    )
    assert torch.equal(full, exact) and torch.equal(turing, exact)


def test_a_wait_is_traced_to_the_line_of_kit_that_made_it():
    from kit.algorithms.memory import ODCMemory

    with FakeCuda() as card:
        mem = ODCMemory(40, 4, 4, min_cluster_size=5).to("cuda")
        # cluster 3 empty: filled by a split
        mem.init(torch.randn(40, 4), torch.tensor([0] * 37 + [1] * 2 + [2]))
        assert card.total() > 0 and any(
            site.startswith("memory.py:") for site in card.sync_sites
        ), dict(card.sync_sites)
