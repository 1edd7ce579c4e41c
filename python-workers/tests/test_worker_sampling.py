"""The sampler in isolation: filtering, per-row generators, stop strings."""

from __future__ import annotations

import math

import torch

from promptcot_worker.sampling import SamplingConfig, filter_logits, first_stop, make_generator, pick_tokens


def cfg(temperature: float = 1.0, top_p: float = 0.0, top_k: int = 0) -> SamplingConfig:
    return SamplingConfig(temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=8, stop=())


def test_top_k_and_top_p_filtering() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2, top_p=0.0)[0, 2:]).all()
    # top_p 0.7: 0.5 alone is not enough, 0.5 + 0.3 covers it, so two tokens stay.
    kept = ~torch.isinf(filter_logits(logits, top_k=0, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]
    # The top token always survives, however small top_p is.
    assert (~torch.isinf(filter_logits(logits, top_k=0, top_p=0.01))).sum().item() == 1


def test_sampling_follows_the_distribution_and_skips_zero_mass() -> None:
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = torch.log(probs).expand(4000, -1).contiguous()
    gens = [make_generator(i) for i in range(4000)]
    picks = pick_tokens(logits, cfg(), gens)
    counts = torch.bincount(picks, minlength=4).float() / 4000
    assert counts[3].item() == 0.0
    assert torch.allclose(counts[:3], probs[:3], atol=0.03)


def test_each_row_depends_only_on_its_generator() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    together = pick_tokens(logits, cfg(temperature=0.8, top_p=0.9), [make_generator(s) for s in (5, 6, 7)])
    alone = pick_tokens(logits[1:2], cfg(temperature=0.8, top_p=0.9), [make_generator(6)])
    assert together[1].item() == alone[0].item()
    negative_seed = make_generator(-1)  # int64 seeds from the wire may be negative
    assert torch.rand(1, generator=negative_seed).item() == torch.rand(1, generator=make_generator(2**64 - 1)).item()


def test_greedy_ignores_generators() -> None:
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, math.log(2.0)]])
    assert pick_tokens(logits, cfg(temperature=0.0), []).tolist() == [1, 0]


def test_first_stop_takes_the_earliest() -> None:
    assert first_stop("abc</s>def\n\n", ["\n\n", "</s>"]) == 3
    assert first_stop("abc", ["x", ""]) == -1
