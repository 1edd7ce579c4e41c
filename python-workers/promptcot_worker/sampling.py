"""Token sampling with one RNG per sample, and per-sample stop bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

DEFAULT_MAX_TOKENS = 256
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int
    stop: tuple[str, ...]

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


def make_generator(seed: int) -> torch.Generator:
    # Seeds arrive as int64 (may be negative); the CPU generator takes any 64-bit pattern.
    return torch.Generator(device="cpu").manual_seed(seed & _U64)


def filter_logits(scores: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) tokens outside top-k and outside the top-p nucleus; rows are independent. [R, V]."""
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
        probs = torch.softmax(sorted_scores, dim=-1)
        # Drop a token when the tokens ranked above it already cover top_p; the top token always stays.
        drop_sorted = (torch.cumsum(probs, dim=-1) - probs) > top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def pick_tokens(
    logits: torch.Tensor, cfg: SamplingConfig, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """One token per row of float32 CPU ``logits`` [R, V]; row i draws only from generators[i].

    Sampling is by inverse CDF with one uniform draw per token: torch.multinomial costs ~1 ms per
    row at a 49k vocabulary, this costs a cumsum.
    """
    if cfg.greedy:
        return torch.argmax(logits, dim=-1)
    scores = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p)
    cdf = torch.cumsum(torch.softmax(scores, dim=-1).double(), dim=-1)
    picks = [_inverse_cdf(cdf[i], g) for i, g in enumerate(generators)]
    return torch.tensor(picks, dtype=torch.long)


def _inverse_cdf(cdf: torch.Tensor, generator: torch.Generator) -> int:
    u = torch.rand(1, generator=generator, dtype=torch.float64) * cdf[-1]
    # right=True skips zero-probability tokens: cdf[i] > u >= cdf[i-1] means p_i > 0.
    idx = int(torch.searchsorted(cdf, u, right=True))
    if idx >= cdf.numel():  # u rounded up onto the total: take the last token with mass
        idx = int(torch.nonzero(torch.diff(cdf, prepend=cdf.new_zeros(1)) > 0)[-1])
    return idx


@dataclass
class SampleState:
    """One sample's progress through decoding."""

    index: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)


def first_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest stop string in text, or -1."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else -1


def advance(
    state: SampleState,
    token: int,
    logprob: float | None,
    cfg: SamplingConfig,
    eos_ids: frozenset[int],
    tokenizer: Any,
) -> None:
    """Record one sampled token and decide whether the sample is finished and why."""
    state.token_ids.append(token)
    if logprob is not None:
        state.logprobs.append(logprob)
    # Decoding every step is only needed to look for stop strings.
    text = tokenizer.decode(state.token_ids, skip_special_tokens=True) if cfg.stop else ""
    cut = first_stop(text, cfg.stop)
    if cut >= 0:
        state.text, state.finish_reason = text[:cut], "stop"
        return
    if token in eos_ids:
        state.finish_reason = "stop"
    elif len(state.token_ids) >= cfg.max_tokens:
        state.finish_reason = "length"
    if state.done:
        state.text = tokenizer.decode(state.token_ids, skip_special_tokens=True)
