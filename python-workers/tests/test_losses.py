"""Each loss against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from promptcot_worker.losses import dpo_loss, grpo_loss, kl_penalty, sequence_logprobs, sft_loss, token_logprobs

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


def test_grpo_clip_higher_closed_form() -> None:
    # clip_low 0.2, clip_high 0.28: ratio kept in [0.8, 1.28].
    # ratios 1.5, 1.5, 0.5, 0.5, 1.25 with advantages +1, -1, +1, -1, +1:
    #   +1 @1.5  -> min(1.5, 1.28) = 1.28 (clipped)   -1 @1.5 -> min(-1.5, -1.28) = -1.5
    #   +1 @0.5  -> min(0.5, 0.8)  = 0.5              -1 @0.5 -> min(-0.5, -0.8)  = -0.8 (clipped)
    #   +1 @1.25 -> 1.25 (inside the higher range; a symmetric 0.2 clip would have cut it to 1.2)
    old = torch.zeros(1, 5)
    new = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.25]])).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0, 1.0]])
    mask = torch.ones(1, 5)
    loss, stats = grpo_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx(-(1.28 - 1.5 + 0.5 - 0.8 + 1.25) / 5, abs=1e-6)
    assert stats["clip_fraction"].item() == pytest.approx(2 / 5)
    assert stats["kl"].item() == 0.0
    loss.backward()
    grad = new.grad[0].tolist()
    assert grad[0] == 0.0 and grad[3] == 0.0  # clipped tokens get no gradient
    # d/dlogp of -ratio * A / 5 = -ratio * A / 5
    assert grad[1] == pytest.approx(1.5 / 5) and grad[2] == pytest.approx(-0.5 / 5)
    assert grad[4] == pytest.approx(-1.25 / 5)
    symmetric, _ = grpo_loss(new.detach(), old, adv, mask, clip_low=0.2, clip_high=0.2)
    assert symmetric.item() == pytest.approx(-(1.2 - 1.5 + 0.5 - 0.8 + 1.2) / 5, abs=1e-6)


def test_grpo_dual_clip_closed_form() -> None:
    # clip 0.2 / 0.28, clip_ratio_c 3 (DAPO, verl): a negative advantage's term is capped at -3 * A.
    #   -1 @10  -> max(10, 1.28) = 10, capped to 3 (dual clip; no gradient)
    #   -2 @5   -> max(10, 2.56) = 10, capped to 6
    #   -1 @2   -> 2 (under the cap: unchanged, gradient -ratio * A)
    #   +1 @10  -> -min(10, 1.28) = -1.28 (positive advantages are never dual-clipped)
    #   -1 @0.5 -> max(0.5, 0.8) = 0.8 (the ordinary lower clip)
    old = torch.zeros(1, 5)
    new = torch.log(torch.tensor([[10.0, 5.0, 2.0, 10.0, 0.5]])).requires_grad_(True)
    adv = torch.tensor([[-1.0, -2.0, -1.0, 1.0, -1.0]])
    mask = torch.ones(1, 5)
    loss, stats = grpo_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx((3.0 + 6.0 + 2.0 - 1.28 + 0.8) / 5, abs=1e-6)
    assert stats["dual_clip_fraction"].item() == pytest.approx(2 / 5)
    loss.backward()
    grad = new.grad[0].tolist()
    assert grad[0] == 0.0 and grad[1] == 0.0 and grad[3] == 0.0 and grad[4] == 0.0
    assert grad[2] == pytest.approx(2.0 / 5)
    # the cap follows clip_ratio_c; one token A = -1, ratio 10 costs 3 per token by default, not 10
    one = torch.log(torch.tensor([[10.0]]))
    a1 = torch.tensor([-1.0])
    m1 = torch.ones(1, 1)
    assert grpo_loss(one, torch.zeros(1, 1), a1, m1, 0.2, 0.28)[0].item() == pytest.approx(3.0)
    assert grpo_loss(one, torch.zeros(1, 1), a1, m1, 0.2, 0.28, clip_ratio_c=5.0)[0].item() == pytest.approx(5.0)
    assert grpo_loss(one, torch.zeros(1, 1), a1, m1, 0.2, 0.28, clip_ratio_c=20.0)[0].item() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="clip_ratio_c"):
        grpo_loss(one, torch.zeros(1, 1), a1, m1, 0.2, 0.28, clip_ratio_c=1.0)


def test_grpo_token_level_mean_and_mask() -> None:
    logps = torch.zeros(2, 3)
    adv = torch.tensor([2.0, -1.0])  # one advantage per completion, broadcast over its tokens
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, _ = grpo_loss(logps, logps, adv, mask, clip_low=0.2, clip_high=0.28)
    # ratio 1 everywhere: loss = -(3 * 2 + 1 * -1) / 4 tokens
    assert loss.item() == pytest.approx(-5.0 / 4)
    changed = logps.clone()
    changed[1, 1:] = 9.0  # padding positions never count
    assert grpo_loss(changed, logps, adv, mask, 0.2, 0.28)[0].item() == pytest.approx(-5.0 / 4)


def test_grpo_sequence_level_mean_of_means() -> None:
    logps = torch.zeros(2, 3)
    adv = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, _ = grpo_loss(logps, logps, adv, mask, 0.2, 0.28, aggregation="sequence")
    # per-sequence means -2 and +1, averaged over 2 sequences; the token mean gave -5/4
    assert loss.item() == pytest.approx((-2.0 + 1.0) / 2)
    with pytest.raises(ValueError, match="loss_aggregation"):
        grpo_loss(logps, logps, adv, mask, 0.2, 0.28, aggregation="bogus")


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_grpo_micro_batches_add_up_to_full_batch(aggregation: str) -> None:
    torch.manual_seed(1)
    new, old, ref = torch.randn(3, 4) * 0.3, torch.randn(3, 4) * 0.3, torch.randn(3, 4) * 0.3
    adv = torch.tensor([1.0, -0.5, 2.0])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float32)
    kw = dict(clip_low=0.2, clip_high=0.28, aggregation=aggregation, ref_token_logps=ref, kl_coef=0.1)
    full, _ = grpo_loss(new, old, adv, mask, **kw)
    total = mask.sum().item() if aggregation == "token" else 3.0
    parts = sum(
        grpo_loss(new[i : i + 1], old[i : i + 1], adv[i : i + 1], mask[i : i + 1], normalizer=total,
                  **{**kw, "ref_token_logps": ref[i : i + 1]})[0]
        for i in range(3)
    )
    assert parts.item() == pytest.approx(full.item(), abs=1e-6)


def test_grpo_kl_estimators_closed_form() -> None:
    # log pi = log 0.5, log ref = log 0.25 on one token, advantage 0 (only the KL term remains)
    # k2 = (log 2)^2 / 2;  k3 = r - log r - 1 with r = ref/pi = 1/2 -> 0.5 + log 2 - 1
    pi = torch.tensor([[math.log(0.5)]], requires_grad=True)
    ref = torch.tensor([[math.log(0.25)]])
    mask = torch.ones(1, 1)
    adv = torch.zeros(1)
    k2, s2 = grpo_loss(pi, pi.detach(), adv, mask, 0.2, 0.28, ref_token_logps=ref, kl_coef=0.5, kl_estimator="k2")
    assert s2["kl"].item() == pytest.approx(0.5 * math.log(2.0) ** 2, abs=1e-6)
    assert k2.item() == pytest.approx(0.25 * math.log(2.0) ** 2, abs=1e-6)
    k3, s3 = grpo_loss(pi, pi.detach(), adv, mask, 0.2, 0.28, ref_token_logps=ref, kl_coef=0.5, kl_estimator="k3")
    assert s3["kl"].item() == pytest.approx(0.5 + math.log(2.0) - 1.0, abs=1e-6)
    assert k3.item() == pytest.approx(0.5 * (0.5 + math.log(2.0) - 1.0), abs=1e-6)
    k3.backward()
    # d/dlogpi of coef * (e^(ref - logpi) - (ref - logpi) - 1) = coef * (1 - r) = 0.5 * 0.5
    assert pi.grad.item() == pytest.approx(0.25, abs=1e-6)
    # without a coefficient the reference is ignored
    off, s0 = grpo_loss(pi.detach(), pi.detach(), adv, mask, 0.2, 0.28, ref_token_logps=ref, kl_coef=0.0)
    assert off.item() == 0.0 and s0["kl"].item() == 0.0
    # k1 as a loss term is refused (its expected gradient is 0: test_kl_gradients_by_enumeration)
    with pytest.raises(ValueError, match="kl_in: reward"):
        grpo_loss(pi, pi.detach(), adv, mask, 0.2, 0.28, ref_token_logps=ref, kl_coef=0.5, kl_estimator="k1")
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_penalty(pi, ref, "k4")


# A toy categorical policy softmax(theta) over K outcomes and a fixed reference. Every expectation over
# on-policy samples is taken exactly, by enumeration: each outcome x is one row of the batch, weighted by
# its (detached) probability pi(x) through the loss's mask (or advantage), so the tests are deterministic.
K = 5


def _toy(theta_scale: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    theta = (torch.randn(K, generator=g, dtype=torch.float64) * theta_scale).requires_grad_(True)
    ref = torch.log_softmax(torch.randn(K, generator=g, dtype=torch.float64), dim=0)
    return theta, ref


def _kl_grad(theta: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """grad_theta KL(pi || ref) in closed form: pi_j (d_j - E_pi[d]) with d = log pi - log ref."""
    logp = torch.log_softmax(theta.detach(), dim=0)
    p, d = logp.exp(), logp - ref
    return p * (d - (p * d).sum())


def _reverse_kl_grad(theta: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """grad_theta KL(ref || pi) = grad of -sum ref log pi = pi - ref."""
    return torch.softmax(theta.detach(), dim=0) - ref.exp()


def _expected_loss_grad(theta: torch.Tensor, ref: torch.Tensor, estimator: str) -> torch.Tensor:
    """grad of E_{x ~ pi}[kl_coef * k(x)] with the estimator as grpo_loss's loss term (advantage 0)."""
    logp = torch.log_softmax(theta, dim=0)
    rows = logp.unsqueeze(-1)  # [K, 1]: outcome x is row x, one token
    weight = logp.detach().exp().unsqueeze(-1)  # pi(x) as the mask: the exact expectation
    loss, _ = grpo_loss(rows, rows.detach(), torch.zeros(K, dtype=torch.float64), weight, 0.2, 0.28,
                        normalizer=1.0, ref_token_logps=ref.unsqueeze(-1), kl_coef=1.0, kl_estimator=estimator)
    (grad,) = torch.autograd.grad(loss, theta)
    return grad


def _expected_k1_reward_grad(theta: torch.Tensor, ref: torch.Tensor, baseline: bool) -> torch.Tensor:
    """grad of the policy-gradient loss with reward -k1 (kl_in: reward, kl_coef 1): advantage pi(x) * -k1(x),
    on-policy (ratio 1); with ``baseline`` the rewards are centred first, as GRPO's group mean does."""
    logp = torch.log_softmax(theta, dim=0)
    p = logp.detach().exp()
    reward = -(logp.detach() - ref)
    if baseline:
        reward = reward - (p * reward).sum()
    rows = logp.unsqueeze(-1)
    loss, _ = grpo_loss(rows, rows.detach(), p * reward, torch.ones(K, 1, dtype=torch.float64), 0.2, 0.28,
                        normalizer=1.0)
    (grad,) = torch.autograd.grad(loss, theta)
    return grad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_gradients_by_enumeration(seed: int) -> None:
    theta, ref = _toy(seed=seed)
    exact = _kl_grad(theta, ref)
    assert exact.abs().max() > 1e-2  # pi far from ref: the comparisons below are not 0 == 0
    # k2 as a loss and k1 as a reward (with or without a baseline) follow grad KL(pi || ref) exactly
    torch.testing.assert_close(_expected_loss_grad(theta, ref, "k2"), exact, rtol=0, atol=1e-12)
    for baseline in (False, True):
        torch.testing.assert_close(_expected_k1_reward_grad(theta, ref, baseline), exact, rtol=0, atol=1e-12)
    # k3 as a loss follows the reverse KL's gradient, which is not grad KL(pi || ref) away from ref
    k3 = _expected_loss_grad(theta, ref, "k3")
    torch.testing.assert_close(k3, _reverse_kl_grad(theta, ref), rtol=0, atol=1e-12)
    assert (k3 - exact).abs().max() > 1e-2
    # k1 as a loss: expected gradient E_pi[grad log pi] = 0, whatever pi and ref (refused as a loss term)
    logp = torch.log_softmax(theta, dim=0)
    k1 = (logp.detach().exp() * kl_penalty(logp, ref, "k1")).sum()
    (g1,) = torch.autograd.grad(k1, theta)
    torch.testing.assert_close(g1, torch.zeros(K, dtype=torch.float64), rtol=0, atol=1e-12)


def test_k3_gradient_agrees_with_kl_to_first_order_near_the_reference() -> None:
    # pi = ref perturbed by eps: both gradients are O(eps), their difference O(eps^2)
    _, ref = _toy()
    direction = torch.randn(K, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    gaps = []
    for eps in (1e-1, 1e-2, 1e-3):
        theta = (ref + eps * direction).requires_grad_(True)
        gaps.append(float((_expected_loss_grad(theta, ref, "k3") - _kl_grad(theta, ref)).abs().max()))
        assert gaps[-1] < eps * 1e-0
    assert gaps[1] / gaps[0] < 0.02 and gaps[2] / gaps[1] < 0.02  # shrinks ~100x per 10x: second order


def test_token_logprobs_at_a_temperature() -> None:
    # logits (0, log 3) at T = 2 -> (0, log 3 / 2): p(1) = sqrt3 / (1 + sqrt3)
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    tok = token_logprobs(logits, torch.tensor([[1]]), temperature=2.0)
    assert tok.item() == pytest.approx(math.log(math.sqrt(3.0) / (1.0 + math.sqrt(3.0))), abs=1e-6)
