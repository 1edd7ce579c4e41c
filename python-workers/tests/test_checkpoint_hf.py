"""Checkpoints are plain HF directories (transformers loads them), and the optimizer's param groups.

The worker's checkpoint holds the weights the worker serves: for a bf16 trainer with fp32 masters,
model.safetensors has the masters rounded to bf16 (what every rollout worker computes with) and
master_fp32.pt the masters themselves. So a model loaded by transformers must give the worker's logits
exactly, and the masters must differ from the rounded weights (else they would be pointless).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from promptcot_worker import checkpoint
from promptcot_worker.backend_transformers import TransformersBackend
from promptcot_worker.models import load_source
from promptcot_worker.schema import Example, Hyper, LossKind


def backend(dtype: torch.dtype = torch.float32, seed: int = 3) -> TransformersBackend:
    loaded = load_source("tiny-random-llama", seed, dtype)
    return TransformersBackend(loaded, torch.device("cpu"), "tiny-random-llama")


def examples() -> list[Example]:
    rng = random.Random(0)
    return [Example(prompt=[rng.randrange(3, 2000) for _ in range(5)],
                    completion=[rng.randrange(3, 2000) for _ in range(7)]) for _ in range(3)]


def step(b: TransformersBackend, i: int, **hyper: float) -> None:
    b.train_step(f"s{i}", LossKind.SFT, examples(), Hyper(**{"learning_rate": 1e-3, "weight_decay": 0.1, **hyper}))


IDS = torch.tensor([[1, 415, 2000, 37, 9, 1200, 5]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_checkpoint_loads_in_transformers_with_the_workers_logits(tmp_path: Path, dtype: torch.dtype) -> None:
    b = backend(dtype)
    step(b, 0)
    path = tmp_path / "step-1"
    b.save_checkpoint(path, include_optimizer=True)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == dtype
    with torch.no_grad():
        want = b.model(IDS).logits
        got = model(IDS).logits
    assert torch.equal(got, want)
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.encode("What is 2 + 3?") == b.tokenizer.encode("What is 2 + 3?")
    assert (path / "generation_config.json").exists()
    masters = checkpoint.load_masters(path)
    if dtype == torch.bfloat16:
        assert masters, "bf16 trainer must save its fp32 masters"
        name = next(n for n in masters if "layers.1.mlp" in n)
        rounded = dict(model.named_parameters())[name]
        assert masters[name].dtype == torch.float32
        assert torch.equal(masters[name].to(torch.bfloat16), rounded.detach())
        assert not torch.equal(masters[name], rounded.detach().float())
    else:
        assert not masters


def test_norms_and_biases_get_no_weight_decay_and_betas_reach_adamw() -> None:
    b = backend()
    step(b, 0, adam_beta1=0.8, adam_beta2=0.95, adam_eps=1e-6)
    groups = b.optimizer.param_groups
    by_param = {id(p): g for g in groups for p in g["params"]}
    names = dict(zip(b._masters().names, b._masters().masters))
    norms = [n for n in names if "norm" in n]
    assert norms and all(by_param[id(names[n])]["weight_decay"] == 0.0 for n in norms)
    assert all(p.ndim < 2 for g in groups if not g["decay"] for p in g["params"])
    matrices = [n for n, p in names.items() if p.ndim == 2]
    assert matrices and all(by_param[id(names[n])]["weight_decay"] == 0.1 for n in matrices)
    assert all(g["betas"] == (0.8, 0.95) and g["eps"] == 1e-6 for g in groups)


def test_no_decay_rule_by_name() -> None:
    assert checkpoint.no_decay("model.layers.0.self_attn.q_proj.bias", torch.zeros(4, 4))
    assert checkpoint.no_decay("model.layers.0.input_layernorm.weight", torch.zeros(4, 4))
    assert checkpoint.no_decay("model.norm.weight", torch.zeros(4))
    assert not checkpoint.no_decay("model.layers.0.mlp.up_proj.weight", torch.zeros(4, 4))


def test_single_group_optimizer_state_from_before_the_split_resumes_exactly(tmp_path: Path) -> None:
    """An optimizer.pt written with one param group (before no-decay groups) loads, each parameter's
    Adam moments go to that parameter, and the next step equals the step the old optimizer would take."""
    old = backend()
    masters = old._masters().masters
    old.optimizer = torch.optim.AdamW(masters, lr=1e-3, weight_decay=0.0)  # the pre-split layout
    step(old, 0, weight_decay=0.0)
    assert len(old.optimizer.param_groups) == 1
    path = tmp_path / "old"
    old.save_checkpoint(path, include_optimizer=True)

    new = backend(seed=99)  # other start weights: everything must come from the checkpoint
    new.load_checkpoint(path, load_optimizer=True)
    assert len(new.optimizer.param_groups) == 2
    for mo, mn in zip(old._masters().masters, new._masters().masters):
        assert torch.equal(old.optimizer.state[mo]["exp_avg_sq"], new.optimizer.state[mn]["exp_avg_sq"])
    step(old, 1, weight_decay=0.0)
    step(new, 1, weight_decay=0.0)
    for (n, po), pn in zip(old.model.named_parameters(), new.model.parameters()):
        assert torch.equal(po, pn), n


def test_optimizer_state_of_another_model_fails_with_a_clear_message(tmp_path: Path) -> None:
    b = backend()
    step(b, 0)
    path = tmp_path / "ckpt"
    b.save_checkpoint(path, include_optimizer=True)
    other = backend()
    other.optimizer = torch.optim.AdamW(other._masters().masters[:3], lr=1e-3)
    with pytest.raises(ValueError, match=r"param groups of sizes .*load_optimizer=false"):
        checkpoint.load_optimizer_state(path, other.optimizer, other._masters().masters)
