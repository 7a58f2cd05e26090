import math

import pytest
import torch

from kit.parts.models import ClusterHead, ClusterNet, ODCNeck, Sobel, build_backbone


@pytest.mark.parametrize("name,cin,size,dims,min_spatial", [
    ("convnet", 1, 28, [32, 32, 64, 128, 256], 4),
    ("resnet18", 3, 32, [64, 64, 128, 256, 512], 4),
    ("resnet50", 3, 64, [64, 256, 512, 1024, 2048], 2),
])
def test_backbones_give_pooled_and_per_stage_features(name, cin, size, dims, min_spatial):
    bb = build_backbone(name, in_channels=cin, image_size=size).eval()
    x = torch.randn(2, cin, size, size)
    maps = bb.stages(x)
    assert [m.shape[1] for m in maps] == dims == bb.stage_dims
    assert maps[-1].shape[-1] == min_spatial
    pooled = bb(x)
    assert pooled.shape == (2, dims[-1])
    assert torch.allclose(pooled, maps[-1].mean(dim=(2, 3)), atol=1e-5)


def test_too_small_images_are_refused_in_one_line():
    with pytest.raises(ValueError, match="too small for resnet50.*at least 32"):
        build_backbone("resnet50", in_channels=3, image_size=16)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg16")


def test_sobel_is_frozen_two_channel_and_zero_on_a_constant_image():
    s = Sobel(3)
    assert list(s.parameters()) == []  # buffers only: nothing for an optimizer to touch
    out = s(torch.full((1, 3, 10, 10), 0.7))
    assert out.shape == (1, 2, 10, 10)
    assert out[..., 1:-1, 1:-1].abs().max() < 1e-6  # zero away from the zero-padded border
    assert out[..., 0, :].abs().max() > 0  # the border sees the padding
    # a vertical edge: Gx responds, Gy does not (interior)
    img = torch.zeros(1, 3, 8, 8)
    img[..., 4:] = 1.0
    e = s(img)[0, :, 1:-1, 1:-1]
    assert e[0].abs().max() > 1 and e[1].abs().max() < 1e-6


def test_sobel_backbone_takes_two_channels_and_stays_fixed_while_training():
    bb = build_backbone("convnet", in_channels=3, sobel=True)
    assert bb.stem[0].in_channels == 2
    before = {k: v.clone() for k, v in bb.sobel.state_dict().items()}
    opt = torch.optim.SGD(bb.parameters(), lr=0.1)
    bb(torch.rand(4, 3, 16, 16)).sum().backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in bb.sobel.state_dict().items())


def test_head_reset_draws_fresh_normal_weights_and_zero_bias():
    torch.manual_seed(0)
    head = ClusterHead(256, 1000)
    w0 = head.weight.detach().clone()
    head.bias.data.fill_(3.0)
    head.reset_parameters()
    assert not torch.equal(w0, head.weight)
    assert abs(head.weight.std().item() - 0.01) < 5e-4 and abs(head.weight.mean().item()) < 5e-4
    assert torch.count_nonzero(head.bias) == 0


def test_odc_neck_is_nonnegative_256d_and_clusternet_wires_it():
    neck = ODCNeck(128).eval()
    z = neck(torch.randn(5, 128))
    assert z.shape == (5, 256) and (z >= 0).all()
    net = ClusterNet(build_backbone("convnet", 1), 7, ODCNeck(256)).eval()
    feats, logits = net(torch.rand(3, 1, 28, 28))
    assert feats.shape == (3, 256) and logits.shape == (3, 7)
    assert torch.allclose(net.features(torch.ones(1, 1, 28, 28)), net(torch.ones(1, 1, 28, 28))[0])


def test_initial_loss_is_near_ln_k():
    torch.manual_seed(0)
    net = ClusterNet(build_backbone("convnet", 1), 1000).eval()
    _, logits = net(torch.rand(64, 1, 28, 28))
    loss = torch.nn.functional.cross_entropy(logits, torch.randint(1000, (64,)))
    assert abs(loss.item() - math.log(1000)) < 0.05
