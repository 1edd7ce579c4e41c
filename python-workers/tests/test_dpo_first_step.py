"""DPO's first step starts at margin 0: the reference log-probs (ScoreLogProbs batches: sorted by length,
chunked by a token budget) and the policy's (TrainStep micro batches: pairs in order, chosen and rejected
rows together) come from forwards with different batch shapes and padding, yet at step 1 the policy is the
reference, so every completion's beta * (policy - reference) must be ~0 (issue 18 item 3).

Tolerances, per completion, in nats (beta = 1 here, so a reward is a log-prob difference):
- float32: 5e-5. Right padding with a causal mask leaves a row's real tokens untouched by padding; what is left
  is the matmuls' float32 rounding under another batch shape (measured on this CPU: <= 1e-5 over 100-400 token
  completions). Before the fix the sums were float32 (and the float64 reference was cast to float32): each
  completion was off by about its sum's ulp, above this bound at these lengths.
- bfloat16: 2e-2. The weights and activations carry 8 mantissa bits, so a batch shape that changes an
  accumulation order moves a token's log-prob by ~1e-3 relative; over tens of tokens that stays well under
  2e-2 nats (measured: <= 3e-4), which moves the first step's loss from log 2 by < beta * 1e-2 / 2.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from promptcot_worker.backend_transformers import TransformersBackend
from promptcot_worker.models import load_source
from promptcot_worker.schema import Example, Hyper, LossKind

CASES = {"float32": (torch.float32, 5e-5, (60, 200)), "bfloat16": (torch.bfloat16, 2e-2, (5, 25))}


def pairs(lengths: tuple[int, int], n: int = 3) -> list[tuple[list[int], list[int], list[int]]]:
    rng = random.Random(0)
    tok = lambda k: [rng.randrange(3, 2000) for _ in range(k)]  # noqa: E731
    return [(tok(rng.randrange(3, 20)), tok(rng.randrange(*lengths)), tok(rng.randrange(*lengths))) for _ in range(n)]


@pytest.mark.parametrize("dtype_name", list(CASES))
def test_first_step_margin_is_zero_across_batch_shapes(dtype_name: str) -> None:
    dtype, tol, lengths = CASES[dtype_name]
    backend = TransformersBackend(load_source("tiny-random-llama", 7, dtype), torch.device("cpu"), "tiny-random-llama")
    raw = pairs(lengths)
    n = len(raw)
    # the controller's reference stage: chosen and rejected of the batch in one ScoreLogProbs call
    scored = backend.score([(p, c) for p, c, _ in raw] + [(p, r) for p, _, r in raw], want_tokens=False)
    examples = [Example(prompt=p, chosen=c, rejected=r, ref_chosen_logp=scored[i].sum_logprob,
                        ref_rejected_logp=scored[n + i].sum_logprob) for i, (p, c, r) in enumerate(raw)]
    # training micro batches of other shapes than scoring's: one pair (2 rows), and a padded-token cap
    for step, shape in enumerate([dict(micro_batch_size=1),
                                  dict(micro_batch_size=0, max_tokens_per_micro_batch=4 * (lengths[1] + 20))]):
        # lr 0: every call is a first step (policy == reference); beta 1: rewards are in nats
        m = backend.train_step(f"s{step}", LossKind.DPO, examples, Hyper(learning_rate=0.0, beta=1.0, **shape))
        assert m["micro_batches"] > 1 or shape["micro_batch_size"] == 0
        assert m["rewards/abs_max"] <= tol, (shape, m)
        assert abs(m["rewards/margin"]) <= tol and abs(m["rewards/chosen"]) <= tol and abs(m["rewards/rejected"]) <= tol
        assert m["loss"] == pytest.approx(n * math.log(2) / n, abs=tol)
