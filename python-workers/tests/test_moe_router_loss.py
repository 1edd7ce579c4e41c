"""The router's load-balancing loss is part of a MoE model's training loss (moe.py), checked against the
term transformers itself adds (router_aux_loss_coef * aux_loss of a forward with output_router_logits)."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from moe_fixture import tiny_qwen3_moe  # noqa: E402
from promptcot_worker.backend_transformers import TransformersBackend  # noqa: E402
from promptcot_worker.batch import build_batch  # noqa: E402
from promptcot_worker.schema import Example, Hyper, LossKind  # noqa: E402


def _examples(backend: TransformersBackend) -> list[Example]:
    rng = random.Random(3)
    raw = [([rng.randrange(3, 2000) for _ in range(5)], [rng.randrange(3, 2000) for _ in range(3 + i)],
            [rng.randrange(3, 2000) for _ in range(2 + i)]) for i in range(3)]
    ref = backend.score([(p, c) for p, c, _ in raw] + [(p, r) for p, _, r in raw], want_tokens=False)
    return [Example(prompt=p, chosen=c, rejected=r, ref_chosen_logp=ref[i].sum_logprob,
                    ref_rejected_logp=ref[3 + i].sum_logprob) for i, (p, c, r) in enumerate(raw)]


def test_dense_models_have_no_router_term() -> None:
    from promptcot_worker.models import load_source

    backend = TransformersBackend(load_source("tiny-random-llama", 0, torch.float32), torch.device("cpu"), "x")
    assert backend.router_aux is None


def test_moe_step_adds_the_router_load_balancing_loss() -> None:
    torch.set_num_threads(1)
    backend = TransformersBackend(tiny_qwen3_moe(), torch.device("cpu"), "moe")
    assert backend.router_aux is not None
    examples = _examples(backend)
    pairs = [(e.prompt, e.chosen) for e in examples] + [(e.prompt, e.rejected) for e in examples]
    batch = build_batch(pairs, backend.pad_id, backend.device)
    with torch.no_grad():
        out = backend.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_router_logits=True)
    expected = backend.model.config.router_aux_loss_coef * float(out.aux_loss)
    assert expected > 0
    metrics = backend.train_step("s0", LossKind.DPO, examples, Hyper(learning_rate=1e-3, beta=0.1))
    assert metrics["router_aux_loss"] == pytest.approx(expected, rel=1e-5)
    # Policy == reference at step 0, so the DPO part is log 2 exactly: the rest is the router term.
    assert metrics["loss"] == pytest.approx(math.log(2) + expected, abs=1e-6)


def test_router_term_reaches_the_gate_gradients() -> None:
    """Without the term (coef 0) the gate's gradient is the DPO gradient alone; with it, it differs."""
    torch.set_num_threads(1)
    grads = []
    for coef in (0.0, 0.5):
        loaded = tiny_qwen3_moe()
        loaded.model.config.router_aux_loss_coef = coef
        backend = TransformersBackend(loaded, torch.device("cpu"), "moe")
        examples = _examples(backend)
        backend._batch_examples = len(examples)
        loss = backend._micro_loss(LossKind.DPO, examples, Hyper(learning_rate=0.0), float(len(examples)), {
            "loss": 0.0, "tokens": 0, "chosen": [], "rejected": [], "clip": [], "kl": []})
        loss.backward()
        gate = backend.model.model.layers[0].mlp.gate.weight
        grads.append(gate.grad.clone())
    assert not torch.allclose(grads[0], grads[1], atol=1e-6)


def test_moe_checkpoint_loads_back(tmp_path: Path) -> None:
    """transformers writes fused experts per expert; the worker's load maps them back (it raised before)."""
    torch.set_num_threads(1)
    backend = TransformersBackend(tiny_qwen3_moe(), torch.device("cpu"), "moe")
    backend.train_step("s0", LossKind.DPO, _examples(backend), Hyper(learning_rate=1e-3, beta=0.1))
    backend.save_checkpoint(tmp_path / "ckpt", include_optimizer=True)
    fresh = TransformersBackend(tiny_qwen3_moe(seed=1), torch.device("cpu"), "moe")
    assert fresh.load_checkpoint(tmp_path / "ckpt", load_optimizer=True) == 1
    live, back = dict(backend.model.named_parameters()), dict(fresh.model.named_parameters())
    assert all(torch.equal(live[n], back[n]) for n in live)
