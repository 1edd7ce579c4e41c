"""Every training loss the worker knows, each checked against a closed form in tests/test_losses.py.

Conventions shared by all functions:
- ``logits[b, t]`` is the prediction for ``labels[b, t]`` (already shifted by the caller).
- ``mask`` is 1.0 on completion tokens that count, 0.0 on padding and prompt tokens.
- ``normalizer``, when given, replaces the local token/example count in the mean. Gradient accumulation
  passes the full batch's count so that the sum of micro-batch losses equals the full-batch mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(labels[b, t]) under softmax(logits[b, t] / temperature), in float32. Shape [B, T]."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    picked = torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def sequence_logprobs(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of masked token log-probs per row. Shape [B]."""
    return (token_logps * mask).sum(dim=-1)


def sft_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
    normalizer: float | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of the completion tokens, mean over counted tokens.

    ``weights`` ([B]) scales each example's tokens; the mean still divides by the token count.
    """
    return nll_loss(token_logprobs(logits, labels), mask, weights, normalizer)


def nll_loss(
    token_logps: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
    normalizer: float | None = None,
) -> torch.Tensor:
    """sft_loss from token log-probs ([B, T]) rather than logits, for the chunked log-prob path."""
    nll = -token_logps * mask
    if weights is not None:
        nll = nll * weights.unsqueeze(-1)
    denom = float(normalizer) if normalizer is not None else mask.sum().clamp(min=1.0)
    return nll.sum() / denom


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO loss per pair (Rafailov et al.; cDPO when label_smoothing > 0), TRL's argument meanings.

    All *_logps are summed log-probs of the whole completion given the prompt, shape [B].
    Returns (losses [B], chosen_rewards [B], rejected_rewards [B]); rewards are detached and
    equal beta * (policy - reference) log-prob of each completion.
    """
    logits = (policy_chosen_logps - policy_rejected_logps) - (ref_chosen_logps - ref_rejected_logps)
    losses = (
        -F.logsigmoid(beta * logits) * (1.0 - label_smoothing)
        - F.logsigmoid(-beta * logits) * label_smoothing
    )
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


KL_LOSS_ESTIMATORS = ("k2", "k3")


def kl_penalty(token_logps: torch.Tensor, ref_token_logps: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from samples of the policy (Schulman's k1 / k2 / k3,
    verl's ``kl`` / ``mse`` / ``low_var_kl``), with d = log pi - log ref:

    - k1 = d: unbiased for the KL's value, but as a loss term its expected gradient is E_pi[grad log pi] = 0;
      it belongs in the reward (the controller's kl_in: reward), where the policy gradient carries it.
    - k2 = d^2 / 2: biased value, but its expected gradient E_pi[d grad log pi] is exactly grad KL(pi || ref).
    - k3 = r - log r - 1 with r = ref / pi: unbiased value, always >= 0, low variance; its expected gradient
      E_pi[(1 - r) grad log pi] = -sum ref grad log pi is grad KL(ref || pi), the reverse KL, which agrees
      with grad KL(pi || ref) to first order near pi = ref (tests/test_losses.py checks all three).
    """
    d = token_logps - ref_token_logps
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d * d
    if estimator == "k3":
        return torch.exp(-d) + d - 1.0
    raise ValueError(f"kl_estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")


def grpo_loss(
    token_logps: torch.Tensor,
    old_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
    aggregation: str = "token",
    normalizer: float | None = None,
    ref_token_logps: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    clip_ratio_c: float = 3.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clipped surrogate with clip-higher (ratio clipped to [1 - clip_low, 1 + clip_high], DAPO), dual
    clip, and an optional KL penalty to a reference, ``kl_coef * KL_est`` added per token (k2 or k3 only:
    see kl_penalty).

    Dual clip (Ye et al. 2020, "dual-clip PPO"; DAPO and verl's ``clip_ratio_c``, default 3): for a token
    with advantage A < 0 the PPO term max(-ratio * A, -clip(ratio) * A) grows without bound with the ratio;
    it is capped at -clip_ratio_c * A, so a token the policy now makes far likelier than the sampler did
    (ratio 10, A = -1: 10 -> 3) cannot dominate the step. A capped token gets no gradient. Tokens with
    A >= 0 are unchanged. ``clip_ratio_c`` must be > 1.

    ``advantages`` is [B] (one per completion, broadcast over its tokens) or [B, T].
    ``aggregation``: "token" = sum over counted tokens / token count (each token weighs the same, DAPO);
    "sequence" = mean over sequences of each sequence's token mean (the original GRPO). ``normalizer``
    replaces the local count (tokens, or sequences) for gradient accumulation.
    Returns (loss, stats) with detached stats: clip_fraction (share of counted tokens whose ratio was
    clipped in the direction that matters), dual_clip_fraction (share of counted tokens capped by the dual
    clip), kl (mean per-token estimate, 0 without a reference).
    """
    if not clip_ratio_c > 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (dual clip), got {clip_ratio_c!r}")
    if ref_token_logps is not None and kl_coef > 0 and kl_estimator not in KL_LOSS_ESTIMATORS:
        raise ValueError(f"kl_estimator {kl_estimator!r} cannot be a loss term (k2 or k3): k1's expected gradient "
                         "as a loss is 0; put k1 in the reward instead (train.grpo.kl_in: reward)")
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    adv = adv.expand_as(token_logps)
    ratio = torch.exp(token_logps - old_token_logps)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    ppo = -torch.minimum(unclipped, clipped)
    cap = -clip_ratio_c * adv
    dual = (adv < 0) & (ppo > cap)
    per_token = torch.where(dual, cap, ppo)
    kl = torch.zeros_like(per_token)
    if ref_token_logps is not None and kl_coef > 0:
        kl = kl_penalty(token_logps, ref_token_logps, kl_estimator)
        per_token = per_token + kl_coef * kl
    counted = mask.sum().clamp(min=1.0)
    if aggregation == "token":
        denom = float(normalizer) if normalizer is not None else counted
        loss = (per_token * mask).sum() / denom
    elif aggregation == "sequence":
        per_seq = (per_token * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1.0)
        denom = float(normalizer) if normalizer is not None else float(per_seq.shape[0])
        loss = per_seq.sum() / denom
    else:
        raise ValueError(f"loss_aggregation must be 'token' or 'sequence', got {aggregation!r}")
    stats = {
        "clip_fraction": (((clipped < unclipped).float() * mask).sum() / counted).detach(),
        "dual_clip_fraction": ((dual.float() * mask).sum() / counted).detach(),
        "kl": ((kl * mask).sum() / counted).detach(),
    }
    return loss, stats
