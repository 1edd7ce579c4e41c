"""Plain request/response shapes the backend works with, so it does not depend on protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class LossKind(str, Enum):
    SFT = "sft"
    DPO = "dpo"
    GRPO = "grpo"


@dataclass
class Example:
    prompt: list[int]
    completion: list[int] = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    ref_chosen_logp: float = 0.0
    ref_rejected_logp: float = 0.0
    advantage: float = 0.0
    weight: float = 1.0
    old_logprobs: list[float] = field(default_factory=list)  # GRPO: behaviour policy, one per completion token
    ref_logprobs: list[float] = field(default_factory=list)  # GRPO: reference policy (KL), one per completion token


@dataclass
class Hyper:
    learning_rate: float
    beta: float = 0.1
    label_smoothing: float = 0.0
    micro_batch_size: int = 0  # 0 = the whole batch in one forward/backward
    max_grad_norm: float = 0.0  # 0 = no clipping
    weight_decay: float = 0.0
    max_tokens_per_micro_batch: int = 0  # 0 = micro batches are bounded by micro_batch_size only
    clip_low: float = 0.2  # GRPO: ratio clipped to [1 - clip_low, 1 + clip_high]
    clip_high: float = 0.2
    clip_ratio_c: float = 3.0  # GRPO dual clip: a negative advantage's per-token loss is at most -clip_ratio_c * A
    kl_coef: float = 0.0  # GRPO: 0 = no KL term
    kl_estimator: str = "k3"  # GRPO: "k2" | "k3" as a loss term (k1 belongs in the reward: refused)
    loss_aggregation: str = "token"  # GRPO: "token" | "sequence"
    logit_temperature: float = 1.0  # log-probs from logits / T (GRPO: the sampling temperature)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    dpo_pair_passes: str = "joint"  # DPO: "joint" (a pair in one forward/backward) | "split" (one sequence per pass)


@dataclass
class ScoreOut:
    sum_logprob: float
    num_tokens: int
    token_logprobs: list[float]
