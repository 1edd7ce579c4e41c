"""Each loss against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from promptcot_worker.losses import dpo_loss, grpo_loss, sequence_logprobs, sft_loss, token_logprobs

LOG1P_E_M1 = math.log1p(math.exp(-1.0))  # -logsigmoid(1)  = 0.31326168...
LOG1P_E_P1 = math.log1p(math.exp(1.0))  # -logsigmoid(-1) = 1.31326168...


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_dpo_loss_closed_form() -> None:
    # pair 0: logits = (-10 - -12) - (-11 - -11) = 2;  beta*logits = 1
    # pair 1: logits = (-5 - -4) - (-5 - -5) = -1;     beta*logits = -0.5
    losses, chosen, rejected = dpo_loss(t(-10, -5), t(-12, -4), t(-11, -5), t(-11, -5), beta=0.5)
    assert losses.tolist() == pytest.approx([LOG1P_E_M1, math.log1p(math.exp(0.5))], abs=1e-12)
    assert chosen.tolist() == pytest.approx([0.5, 0.0])  # 0.5 * (policy - ref)
    assert rejected.tolist() == pytest.approx([-0.5, 0.5])


def test_dpo_label_smoothing_closed_form() -> None:
    # cDPO with eps = 0.1 at beta*logits = 1: 0.9 * log(1+e^-1) + 0.1 * log(1+e) = log(1+e^-1) + 0.1
    losses, _, _ = dpo_loss(t(-10), t(-12), t(-11), t(-11), beta=0.5, label_smoothing=0.1)
    expected = 0.9 * LOG1P_E_M1 + 0.1 * LOG1P_E_P1
    assert losses.item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(LOG1P_E_M1 + 0.1, abs=1e-12)


def test_dpo_at_reference_is_log2_and_rewards_are_detached() -> None:
    policy_c = t(-3.0).requires_grad_(True)
    policy_r = t(-4.0).requires_grad_(True)
    losses, chosen, rejected = dpo_loss(policy_c, policy_r, t(-3.0), t(-4.0), beta=0.1)
    assert losses.item() == pytest.approx(math.log(2.0))
    assert not chosen.requires_grad and not rejected.requires_grad
    losses.sum().backward()
    # d/dx -logsigmoid(beta*x) at x=0 is -beta/2, pushing chosen up and rejected down.
    assert policy_c.grad.item() == pytest.approx(-0.05)
    assert policy_r.grad.item() == pytest.approx(0.05)


def test_token_logprobs_and_sequence_sum() -> None:
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])
    labels = torch.tensor([[1, 0]])
    tok = token_logprobs(logits, labels)
    assert tok.tolist()[0] == pytest.approx([math.log(0.75), math.log(0.25)], abs=1e-6)
    assert sequence_logprobs(tok, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(math.log(0.75), abs=1e-6)


def test_sft_loss_counts_only_masked_tokens() -> None:
    # p(token 1) = 3/4 -> nll 0.28768; p(token 0) = 1/4 -> nll 1.38629; third token is masked out.
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0, 1]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    expected = (-math.log(0.75) - math.log(0.25)) / 2
    assert sft_loss(logits, labels, mask).item() == pytest.approx(expected, abs=1e-6)
    changed = logits.clone()
    changed[0, 2] = torch.tensor([50.0, -50.0])
    assert sft_loss(changed, labels, mask).item() == pytest.approx(expected, abs=1e-6)
    # Gradient accumulation: a global normalizer turns the mean into sum / normalizer.
    assert sft_loss(logits, labels, mask, normalizer=4.0).item() == pytest.approx(expected * 2 / 4, abs=1e-6)


def test_sft_micro_batches_add_up_to_full_batch_mean() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5)
    labels = torch.randint(0, 5, (3, 4))
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float32)
    full = sft_loss(logits, labels, mask)
    total = mask.sum().item()
    parts = sum(sft_loss(logits[i : i + 1], labels[i : i + 1], mask[i : i + 1], normalizer=total) for i in range(3))
    assert parts.item() == pytest.approx(full.item(), abs=1e-6)


def test_grpo_clipping() -> None:
    # ratios 1.5, 1.5, 0.5, 0.5 with advantages +1, -1, +1, -1 and clip 0.2:
    #   +1 @1.5 -> min(1.5, 1.2) = 1.2 (clipped)   -1 @1.5 -> min(-1.5, -1.2) = -1.5
    #   +1 @0.5 -> min(0.5, 0.8) = 0.5             -1 @0.5 -> min(-0.5, -0.8) = -0.8 (clipped)
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5]])).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, clipped = grpo_loss(new, old, adv, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(-(1.2 - 1.5 + 0.5 - 0.8) / 4, abs=1e-6)
    assert clipped.item() == pytest.approx(0.5)
    loss.backward()
    grad = new.grad[0].tolist()
    assert grad[0] == 0.0 and grad[3] == 0.0  # clipped tokens get no gradient
    assert grad[1] == pytest.approx(1.5 / 4) and grad[2] == pytest.approx(-0.5 / 4)


def test_grpo_token_level_mean_and_mask() -> None:
    logps = torch.zeros(2, 3)
    adv = torch.tensor([2.0, -1.0])  # one advantage per completion, broadcast over its tokens
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, _ = grpo_loss(logps, logps, adv, mask, clip_eps=0.2)
    # ratio 1 everywhere: loss = -(3 * 2 + 1 * -1) / 4 tokens
    assert loss.item() == pytest.approx(-5.0 / 4)
