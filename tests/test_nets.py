"""Networks: AHNet's size rule, the DynUNet plan, the entry point and the encoder transfer."""

import pytest
import torch

from liverseg.errors import ConfigError, InputError
from liverseg.nets import (
    ResNet2d,
    ahnet,
    build_network,
    dynunet_plan,
    load_imagenet_resnet50,
    resnet2d,
    transfer_encoder,
)
from liverseg.patch_rules import check_ahnet_patch_size

SMALL = (1, 1, 1, 1)  # the smallest AHNet encoder: one bottleneck per stage


@pytest.fixture(scope="module")
def small_ahnets():
    """One tiny AHNet per psp_block_num, built once (each is ~22M parameters)."""
    cache = {}

    def get(psp):
        if psp not in cache:
            torch.manual_seed(0)
            cache[psp] = ahnet(2, SMALL, psp)
        return cache[psp]

    return get


# ----------------------------------------------------------------- AHNet size rule


@pytest.mark.parametrize(
    "size, psp, message",
    [
        (
            [128, 128, 48],
            4,
            r"models\.ahnet_tumor\.patch_size \[128, 128, 48\]: "
            r"the slice axis \(48\) must be a multiple of 32 \(AHNet rule\)",
        ),
        ([96, 128, 64], 4, r"H \(96\) must be a multiple of 128 with psp_block_num 4"),
        ([128, 96, 64], 3, r"W \(96\) must be a multiple of 64 with psp_block_num 3"),
        ([48, 64, 32], 1, r"H \(48\) must be a multiple of 32"),
        ([32, 32, 32], 1, r"at least one side must be >= 64"),
        ([128, 128], 4, r"expected three positive integers"),
        ([128, 128, 64.0], 4, r"expected three positive integers"),
    ],
)
def test_each_broken_size_rule_names_key_size_and_rule(size, psp, message):
    with pytest.raises(ConfigError, match=message):
        check_ahnet_patch_size(size, psp, key="models.ahnet_tumor.patch_size")


def test_psp_block_num_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match=r"ahnet\.psp_block_num 5"):
        check_ahnet_patch_size([128, 128, 64], 5)


def test_paper_sizes_pass():
    check_ahnet_patch_size([256, 256, 64], 4)
    check_ahnet_patch_size([128, 128, 64], 4)


@pytest.mark.parametrize(
    "size, psp",
    [
        ((64, 32, 32), 1),  # valid: the smallest training-safe patch with a small PSP
        ((48, 64, 32), 1),  # MONAI's docstring allows 48 (multiple of 16, >= 32); it fails
        ((32, 32, 32), 0),  # every side < 64: BatchNorm sees one value at batch size 1
        ((64, 64, 48), 1),  # slice axis not a multiple of 32
        ((32, 64, 32), 3),  # H not a multiple of 64 with three PSP levels
        ((64, 64, 32), 3),  # valid
    ],
)
def test_rule_agrees_with_a_real_forward_pass(size, psp, small_ahnets):
    """The rule accepts exactly the sizes AHNet can train on (batch 1, output = input size)."""
    try:
        check_ahnet_patch_size(size, psp)
        accepted = True
    except ConfigError:
        accepted = False
    net = small_ahnets(psp).train()
    try:
        with torch.no_grad():
            out = net(torch.randn(1, 1, *size))
        works = tuple(out.shape) == (1, 2, *size)
    except (RuntimeError, ValueError):
        works = False
    assert accepted == works


# ------------------------------------------------------------------- DynUNet plan


def test_dynunet_plan_for_anisotropic_spacing_matches_hand_plan():
    # spacing (0.8, 0.8, 3.0), patch (256, 256, 64); the spacing doubles on halved axes:
    # step 1: ratios (1, 1, 3.75): stride (2, 2, 1), kernel (3, 3, 1); sizes (128, 128, 64), spacing (1.6, 1.6, 3)
    # step 2: ratios (1, 1, 1.875): stride (2, 2, 2), kernel 3s; sizes (64, 64, 32)
    # steps 3-5: stride (2, 2, 2); sizes (32, 32, 16), (16, 16, 8), (8, 8, 4)
    # step 6: slices at 4 < 8: stride (2, 2, 1); sizes (4, 4, 4); step 7: all < 8, stop.
    kernels, strides = dynunet_plan((0.8, 0.8, 3.0), (256, 256, 64))
    assert strides == [[1, 1, 1], [2, 2, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 1]]
    assert kernels == [[3, 3, 1]] + [[3, 3, 3]] * 6
    assert len(kernels) == len(strides)


def test_dynunet_plan_for_isotropic_spacing():
    # (64, 64, 32) at 1 mm: all axes halve until the slice axis reaches 4, then in-plane once more.
    kernels, strides = dynunet_plan((1.0, 1.0, 1.0), (64, 64, 32))
    assert strides == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 1]]
    assert kernels == [[3, 3, 3]] * 5


def test_dynunet_plan_refuses_a_patch_its_strides_do_not_divide():
    # 60 slices halve three times (60 -> 30 -> 15 -> 7.5): not a multiple of 2**3.
    message = r"models\.x\.patch_size \[256, 256, 60\]: axis 2 \(60\) must be a multiple of 8"
    with pytest.raises(ConfigError, match=message):
        dynunet_plan((0.8, 0.8, 3.0), (256, 256, 60), key="models.x.patch_size")


# ------------------------------------------------------------------ build_network


def test_build_network_ahnet_output_shape():
    torch.manual_seed(0)
    ahnet_cfg = {
        "layers": list(SMALL),
        "psp_block_num": 1,
        "encoder": "none",
    }  # other keys are ignored
    net = build_network("ahnet", 3, (64, 64, 32), ahnet_cfg, None, None)
    with torch.no_grad():
        out = net.eval()(torch.randn(1, 1, 64, 64, 32))
    assert out.shape == (1, 3, 64, 64, 32)


def test_build_network_dynunet_output_shape():
    torch.manual_seed(0)
    net = build_network("dynunet", 2, (32, 32, 16), None, {"filters": 4}, (0.8, 0.8, 3.0))
    with torch.no_grad():
        out = net.eval()(torch.randn(1, 1, 32, 32, 16))
    assert out.shape == (1, 2, 32, 32, 16)


def test_build_network_checks_before_building():
    with pytest.raises(ConfigError, match=r"models\.m\.patch_size \[64, 64, 40\]: the slice axis"):
        build_network(
            "ahnet",
            3,
            [64, 64, 40],
            {"layers": SMALL, "psp_block_num": 1},
            None,
            None,
            key="models.m",
        )
    with pytest.raises(ConfigError, match=r"models\.m\.network 'unet'"):
        build_network("unet", 3, [64, 64, 32], None, None, None, key="models.m")
    with pytest.raises(ConfigError, match=r"dynunet\.filters"):
        build_network("dynunet", 3, [32, 32, 16], None, {"filters": [8, 16]}, (1.0, 1.0, 1.0))


# --------------------------------------------------------------- encoder transfer


def test_encoder_transfer_copies_the_2d_weights(small_ahnets):
    torch.manual_seed(1)
    net2d = resnet2d(SMALL)
    with torch.no_grad():  # make every copied quantity distinguishable from its default
        for module in net2d.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-1, 1)
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    net3d = ahnet(2, SMALL, 1)
    transfer_encoder(net3d, net2d)

    assert net3d.conv1.weight.shape == (64, 1, 7, 7, 3)
    for k in range(3):  # the RGB / 2.5D channels become the three taps along the slice axis
        assert torch.equal(net3d.conv1.weight[:, 0, :, :, k], net2d.conv1.weight[:, k])
    assert torch.equal(net3d.bn0.weight, net2d.bn1.weight)
    assert torch.equal(net3d.bn0.running_mean, net2d.bn1.running_mean)
    block2d, block3d = net2d.layer1[0], net3d.layer1[0]
    assert torch.equal(block3d.conv2.weight, block2d.conv2.weight.unsqueeze(-1))
    assert block3d.conv2.weight.shape[-1] == 1
    assert torch.equal(block3d.downsample[0].weight, block2d.downsample[0].weight.unsqueeze(-1))
    assert torch.equal(net3d.layer4[0].bn3.bias, net2d.layer4[0].bn3.bias)
    assert torch.equal(net3d.layer4[0].bn3.running_var, net2d.layer4[0].bn3.running_var)


def test_encoder_transfer_refuses_another_depth():
    with pytest.raises(ConfigError, match="same ahnet.layers"):
        transfer_encoder(ahnet(2, (1, 2, 1, 1), 1), resnet2d(SMALL))


def test_imagenet_resnet50_loads_from_a_checked_file(torchvision_weights):
    path, state = torchvision_weights
    net = load_imagenet_resnet50(path)
    assert isinstance(net, ResNet2d)
    assert torch.equal(net.layer3[5].conv2.weight, state["layer3.5.conv2.weight"])
    assert torch.equal(net.bn0.running_var, state["bn1.running_var"])


def test_missing_or_other_imagenet_weights_say_how_to_get_them(torchvision_weights, tmp_path):
    path, _ = torchvision_weights
    with pytest.raises(
        ConfigError,
        match=r"ahnet\.imagenet_weights .*nothere\.pth: file not found\. Get them one of two ways",
    ):
        load_imagenet_resnet50(tmp_path / "nothere.pth")
    path.write_bytes(path.read_bytes()[:-10])  # a partial download
    with pytest.raises(InputError, match=r"SHA-256 \w+\.\.\., expected \w+\.\.\..*Get them one of two ways"):
        load_imagenet_resnet50(path)


def test_check_patch_size_names_the_models_config_key():
    """What the training job checks before training: the real key, never a placeholder."""
    from liverseg.nets import check_patch_size

    with pytest.raises(ConfigError, match=r"^models\.dyn\.patch_size \[256, 256, 60\]: axis 2"):
        check_patch_size("dynunet", (256, 256, 60), None, (0.8, 0.8, 3.0), "models.dyn")
    with pytest.raises(ConfigError, match=r"^models\.ah\.patch_size \[64, 64, 48\]"):
        check_patch_size("ahnet", (64, 64, 48), {"psp_block_num": 1}, None, "models.ah")
    with pytest.raises(ConfigError, match=r"^patch_size \[256, 256, 60\]"):
        dynunet_plan((0.8, 0.8, 3.0), (256, 256, 60))
