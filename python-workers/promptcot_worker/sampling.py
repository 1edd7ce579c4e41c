"""Token sampling with one RNG per sample, and per-sample stop bookkeeping."""

from __future__ import annotations

import math
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
    min_p: float = 0.0
    repetition_penalty: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @property
    def penalizes(self) -> bool:
        return self.repetition_penalty not in (0.0, 1.0)


def make_generator(seed: int) -> torch.Generator:
    # Seeds arrive as int64 (may be negative); the CPU generator takes any 64-bit pattern.
    return torch.Generator(device="cpu").manual_seed(seed & _U64)


def penalize_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style repetition penalty (as HF's): a seen token's logit is divided by ``penalty`` when positive,
    multiplied when negative. ``seen`` is a bool [R, V] mask of the tokens in each row's prompt and output."""
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def filter_logits(scores: torch.Tensor, top_k: int, top_p: float, min_p: float = 0.0) -> torch.Tensor:
    """Mask (to -inf) tokens outside top-k, outside the top-p nucleus, and below min_p times the top
    token's probability; rows are independent. [R, V]."""
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
    if min_p > 0.0:
        # p_i < min_p * p_max  <=>  score_i < score_max + log(min_p): no softmax needed.
        floor = scores.max(dim=-1, keepdim=True).values + math.log(min_p)
        scores = scores.masked_fill(scores < floor, float("-inf"))
    return scores


def pick_tokens(
    logits: torch.Tensor,
    cfg: SamplingConfig,
    generators: Sequence[torch.Generator],
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """One token per row of float32 CPU ``logits`` [R, V]; row i draws only from generators[i].

    ``seen`` ([R, V] bool, rows' own prompt+output tokens) is needed when cfg.penalizes. Order, as in HF:
    repetition penalty, temperature, top-k, top-p, min-p. Sampling is by inverse CDF with one uniform
    draw per token: torch.multinomial costs ~1 ms per row at a 49k vocabulary, this costs a cumsum.
    """
    if cfg.penalizes:
        if seen is None:
            raise ValueError("repetition_penalty needs the rows' seen-token masks")
        logits = penalize_repeats(logits, seen, cfg.repetition_penalty)
    if cfg.greedy:
        return torch.argmax(logits, dim=-1)
    scores = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p)
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
    # Trailing token_ids that were not sampled (re-encoded text before a stop, the appended EOS), so the
    # decode loop has no log-prob for them; the backend scores them when log-probs are wanted.
    unscored: int = 0

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)


def first_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest stop string in text, or -1."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else -1


def tail_has_stop(tokenizer: Any, ids: Sequence[int], stops: Sequence[str]) -> bool:
    """Whether a stop string appears once ``ids[-1]`` is added, decoding only a trailing window.

    Checked after every token, so a stop that is new must overlap the newest token's text: it lies in the
    last len(newest) + len(stop) - 1 characters. The window grows until its text has that many characters
    plus 4 (a window starting inside a multi-byte character decodes its orphan bytes to U+FFFD) or
    reaches the first token. Cost per token: O(window), not O(output) as a full decode.
    """
    need = len(tokenizer.decode(ids[-1:], skip_special_tokens=True)) + max(len(s) for s in stops) + 4
    width = need
    while True:
        start = max(0, len(ids) - width)
        text = tokenizer.decode(ids[start:], skip_special_tokens=True)
        if start == 0 or len(text) >= need:
            return first_stop(text, stops) >= 0
        width *= 2


def tokens_for_text(tokenizer: Any, ids: list[int], text: str) -> tuple[list[int], int, str]:
    """Token ids that decode exactly to ``text``, a prefix of decode(ids).

    Keeps the longest prefix of the sampled ids whose decoding is a prefix of ``text`` and re-encodes the
    rest of ``text`` (the part of a token that straddles the stop). If the re-encoding does not round-trip
    (some non-byte-level tokenizers), the rest is dropped from ``text`` instead: trained tokens and graded
    text must be the same string. Returns (ids, how many of them were sampled, text).
    """
    keep = len(ids)
    decoded = tokenizer.decode(ids[:keep], skip_special_tokens=True)
    while keep > 0 and not text.startswith(decoded):
        keep -= 1
        decoded = tokenizer.decode(ids[:keep], skip_special_tokens=True)
    rest = text[len(decoded):]
    extra = [int(t) for t in tokenizer.encode(rest, add_special_tokens=False)] if rest else []
    if extra and tokenizer.decode(ids[:keep] + extra, skip_special_tokens=True) != text:
        extra, text = [], decoded
    return ids[:keep] + extra, keep, text


def advance(
    state: SampleState,
    token: int,
    logprob: float | None,
    cfg: SamplingConfig,
    eos_ids: frozenset[int],
    tokenizer: Any,
    stop_eos: int | None = None,
) -> None:
    """Record one sampled token and decide whether the sample is finished and why.

    On a stop string, ``text`` is cut before it and ``token_ids`` become tokens decoding to exactly that
    text, plus ``stop_eos`` (when given) so that training on the sample teaches the model to stop there.
    """
    state.token_ids.append(token)
    if logprob is not None:
        state.logprobs.append(logprob)
    stopped = cfg.stop and token not in eos_ids and tail_has_stop(tokenizer, state.token_ids, cfg.stop)
    if stopped and _finish_at_stop(state, cfg.stop, tokenizer, stop_eos):
        return
    if token in eos_ids:
        state.finish_reason = "stop"
    elif len(state.token_ids) >= cfg.max_tokens:
        state.finish_reason = "length"
    if state.done:
        state.text = tokenizer.decode(state.token_ids, skip_special_tokens=True)


def _finish_at_stop(state: SampleState, stops: Sequence[str], tokenizer: Any, stop_eos: int | None) -> bool:
    full = tokenizer.decode(state.token_ids, skip_special_tokens=True)
    cut = first_stop(full, stops)
    if cut < 0:  # the window's orphan-byte U+FFFD matched a stop that holds one; the full text decides
        return False
    ids, sampled, text = tokens_for_text(tokenizer, state.token_ids, full[:cut])
    tail = [stop_eos] if stop_eos is not None else []
    state.token_ids = ids + tail
    del state.logprobs[sampled:]
    state.unscored = len(state.token_ids) - sampled
    state.text, state.finish_reason = text, "stop"
    return True
