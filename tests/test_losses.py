"""The MbLS loss against values worked out by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from liverseg.losses import MarginLabelSmoothing


def cross_entropy(logits: list[float], target: int) -> float:
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


def test_three_classes_matches_hand_value():
    voxels = [[12.0, 0.0, 1.0], [0.0, 3.0, 15.0]]
    targets = [0, 1]
    # Hinge max(0, max_j l_j - l_k - 10): voxel 1 -> [0, 2, 1], voxel 2 -> [5, 2, 0].
    penalty = (0 + 2 + 1 + 5 + 2 + 0) / 6
    expected = sum(cross_entropy(v, t) for v, t in zip(voxels, targets)) / 2 + 0.1 * penalty

    logits = torch.tensor(voxels, dtype=torch.float64).T[None]  # (B=1, C=3, 2 voxels)
    target = torch.tensor([targets])
    loss = MarginLabelSmoothing()(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_two_classes_with_other_margin_and_weight():
    voxels = [[20.0, 4.0], [1.0, 2.0], [-3.0, 9.0]]
    targets = [0, 0, 1]
    # margin 5: distances [0, 16], [1, 0], [12, 0] -> hinge [0, 11], [0, 0], [7, 0].
    penalty = (11 + 7) / 6
    expected = sum(cross_entropy(v, t) for v, t in zip(voxels, targets)) / 3 + 0.2 * penalty

    logits = torch.tensor(voxels, dtype=torch.float64).T.reshape(1, 2, 3, 1)  # 2D spatial (3, 1)
    target = torch.tensor(targets).reshape(1, 1, 3, 1)  # channel axis of size 1
    loss = MarginLabelSmoothing(margin=5.0, alpha=0.2)(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_target_layouts_agree_and_zero_alpha_is_cross_entropy():
    torch.manual_seed(0)
    logits = 30 * torch.randn(2, 3, 4, 4, 2)
    target = torch.randint(0, 3, (2, 4, 4, 2))
    loss = MarginLabelSmoothing()
    assert loss(logits, target) == pytest.approx(loss(logits, target[:, None].float()).item())
    assert MarginLabelSmoothing(alpha=0.0)(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target).item()
    )
    assert loss(logits, target) > F.cross_entropy(logits, target)  # logits spread > margin are penalised


def test_gradient_flows_through_the_margin_term():
    # Confident and correct: cross-entropy's gradient is ~0, the margin term's is not.
    logits = torch.tensor([[[30.0], [0.0], [-5.0]]], requires_grad=True)
    target = torch.tensor([[0]])
    MarginLabelSmoothing()(logits, target).backward()
    grad = logits.grad[0, :, 0]
    # d/dl of 0.1 * mean(relu(l0 - lk - 10)) over 3 entries: both non-winning classes are past the margin.
    assert grad[1].item() == pytest.approx(-0.1 / 3, abs=1e-6)
    assert grad[2].item() == pytest.approx(-0.1 / 3, abs=1e-6)
    assert grad[0].item() == pytest.approx(0.2 / 3, abs=1e-6)


def test_mismatched_target_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        MarginLabelSmoothing()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))


def test_dice_term_adds_one_minus_foreground_soft_dice():
    # two voxels, two classes: logits give softmax foreground probabilities s0, s1
    logits = torch.tensor([[[0.0, 2.0], [1.0, 0.0]]])  # (B=1, C=2, N=2)
    target = torch.tensor([[1, 0]])
    # voxel 0: logits (0, 1); voxel 1: logits (2, 0)
    p1 = [math.exp(1) / (math.exp(0) + math.exp(1)), math.exp(0) / (math.exp(2) + math.exp(0))]
    dice = (2 * p1[0] + 1e-5) / (sum(p1) + 1 + 1e-5)  # foreground: voxel 0 only
    plain = MarginLabelSmoothing(margin=10, alpha=0.1)(logits, target)
    with_dice = MarginLabelSmoothing(margin=10, alpha=0.1, dice_weight=0.5)(logits, target)
    assert float(with_dice - plain) == pytest.approx(0.5 * (1 - dice), rel=1e-6)
