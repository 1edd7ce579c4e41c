"""Two FSDP2 ranks (gloo, CPU) against one single-rank trainer on the same tiny model and batches.

Tolerance: the ranks sum their gradients in another order than one process accumulating micro batches,
and the gloo reduce-scatter adds in its own order too, so values agree to float32 rounding (~1e-7
relative per addition), not bit for bit. AdamW divides by sqrt(v), which can turn a rounding difference in a
near-zero gradient into a visible update difference (bounded by lr per step), so weights are compared with
an absolute tolerance of 5e-5 at lr 1e-3 (measured: 1.4e-5 after 4 steps; one step moves weights by ~1e-3)
and losses with 1e-5.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python-workers"))

from promptcot_worker import checkpoint  # noqa: E402
from promptcot_worker import losses  # noqa: E402
from promptcot_worker.backend_transformers import TransformersBackend  # noqa: E402
from promptcot_worker.batch import build_batch, completion_logits  # noqa: E402
from promptcot_worker.memory import chunked_token_logprobs  # noqa: E402
from promptcot_worker.sharded import split_batch  # noqa: E402
from promptcot_worker.models import load_source  # noqa: E402
from promptcot_worker.schema import Example, Hyper, LossKind  # noqa: E402

MODEL = "tiny-random-llama"
ATOL = 1e-5
WEIGHT_ATOL = 5e-5
DPO_STEPS = 3
HYPER = dict(learning_rate=1e-3, beta=0.1, micro_batch_size=2, max_grad_norm=1.0)
GRPO_TEMPERATURE = 0.7


def _tokens(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(3, 2000) for _ in range(n)]


def _single() -> TransformersBackend:
    torch.manual_seed(0)
    return TransformersBackend(load_source(MODEL, 0, torch.float32), torch.device("cpu"), MODEL)


def _batches() -> tuple[list[Example], list[Example]]:
    """5 DPO pairs (micro batches of 2 leave one rank with nothing in the last: the zero-weighted pass) with
    reference log-probs from the base model, and 3 GRPO completions with advantages."""
    rng = random.Random(7)
    raw = [(_tokens(rng, 5), _tokens(rng, 3 + i), _tokens(rng, 2 + 2 * i)) for i in range(5)]
    ref = _single().score([(p, c) for p, c, _ in raw] + [(p, r) for p, _, r in raw], want_tokens=False)
    dpo = [Example(prompt=p, chosen=c, rejected=r, ref_chosen_logp=ref[i].sum_logprob,
                   ref_rejected_logp=ref[5 + i].sum_logprob) for i, (p, c, r) in enumerate(raw)]
    grpo = [Example(prompt=_tokens(rng, 4), completion=_tokens(rng, 3 + i), advantage=a)
            for i, a in enumerate((1.0, -0.5, -0.5))]
    return dpo, grpo


def _train(backend: TransformersBackend, dpo: list[Example], grpo: list[Example]) -> list[float]:
    losses = [backend.train_step(f"dpo-{i}", LossKind.DPO, dpo, Hyper(**HYPER))["loss"] for i in range(DPO_STEPS)]
    # GRPO at a sampling temperature: the chunked head divides its logits too (no full-logits fallback).
    grpo_hyper = Hyper(**HYPER, logit_temperature=GRPO_TEMPERATURE)
    losses.append(backend.train_step("grpo-0", LossKind.GRPO, grpo, grpo_hyper)["loss"])
    return losses


def _no_full_logits(*_: object, **__: object) -> None:
    raise AssertionError("the full-logits path was taken on a sharded rank")


def _rank_main(rank: int, world: int, port: int, out: str, resume_from: str) -> None:
    from promptcot_worker import backend_transformers
    from promptcot_worker.sharded import Rank, ShardedBackend, init_group

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # Scoring, DPO and GRPO at T != 1 must all go through the chunked head: the [B, C, V] path raises here.
    backend_transformers.completion_logits = _no_full_logits
    me = Rank(rank, world)
    init_group(me, torch.device("cpu"))
    torch.manual_seed(0)
    backend = ShardedBackend.start(MODEL, 0, torch.device("cpu"), me, torch.float32)
    local = sum(p.to_local().numel() for p in backend.model.parameters())
    whole = sum(p.numel() for p in backend.model.parameters())
    dpo, grpo = _batches()
    # Scored by the group first, as the controller does (reference log-probs): a no-grad forward before
    # training once left FSDP's root parameters gathered, and the optimizer then held the wrong tensors.
    refs = backend.score([(e.prompt, e.chosen) for e in dpo], want_tokens=False)
    losses = _train(backend, dpo, grpo)
    backend.save_checkpoint(Path(out) / "sharded", include_optimizer=True)
    # Bit-exact resume in the same group (2 -> 2): one step, back to the checkpoint, the same step again.
    first = backend.train_step("resume-a", LossKind.DPO, dpo, Hyper(**HYPER))["loss"]
    backend.save_checkpoint(Path(out) / "sharded-step", include_optimizer=False)
    backend.load_checkpoint(Path(out) / "sharded", load_optimizer=True)
    again = backend.train_step("resume-b", LossKind.DPO, dpo, Hyper(**HYPER))["loss"]
    backend.save_checkpoint(Path(out) / "sharded-step-again", include_optimizer=False)
    # The other direction: a single-rank checkpoint (weights + optimizer) loaded into the group, one more step.
    backend.load_checkpoint(Path(resume_from), load_optimizer=True)
    losses.append(backend.train_step("after-load", LossKind.DPO, dpo, Hyper(**HYPER))["loss"])
    backend.save_checkpoint(Path(out) / "sharded-after-load", include_optimizer=False)
    if rank == 0:
        torch.save({"losses": losses, "refs": [r.sum_logprob for r in refs], "resume": [first, again],
                    "local_fraction": local / whole},
                   Path(out) / "losses.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    """The HF-layout weights, whether one file (single rank) or one file per rank with an index."""
    return checkpoint.read_safetensors(path)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("sharded")
    torch.set_num_threads(1)
    dpo, grpo = _batches()
    single = _single()
    single_losses = _train(single, dpo, grpo)
    single.save_checkpoint(tmp / "single", include_optimizer=True)
    mp.start_processes(_rank_main, args=(2, _free_port(), str(tmp), str(tmp / "single")), nprocs=2,
                       join=True, start_method="spawn")
    # Reference for the load direction: the single-rank trainer takes the same step after its own checkpoint.
    single.load_checkpoint(tmp / "single", load_optimizer=True)
    single_losses.append(single.train_step("after-load", LossKind.DPO, dpo, Hyper(**HYPER))["loss"])
    single.save_checkpoint(tmp / "single-after-load", include_optimizer=False)
    got = torch.load(tmp / "losses.pt")
    return {"tmp": tmp, "single": single_losses, "sharded": got["losses"], "refs": got["refs"], "resume": got["resume"], "local_fraction": got["local_fraction"],
            "single_refs": [e.ref_chosen_logp for e in dpo]}


def test_two_ranks_match_single_rank_losses(runs: dict) -> None:
    single, sharded = runs["single"], runs["sharded"]
    assert len(sharded) == DPO_STEPS + 2
    assert sharded[0] == pytest.approx(0.6931, abs=2e-3)  # policy == reference
    assert sharded[DPO_STEPS - 1] < sharded[0] - 1e-3  # it learns
    assert sharded == pytest.approx(single, abs=ATOL)
    assert runs["refs"] == pytest.approx(runs["single_refs"], abs=ATOL)  # the group's ScoreLogProbs


def test_two_ranks_match_single_rank_weights_and_layout(runs: dict) -> None:
    tmp: Path = runs["tmp"]
    assert _max_diff(_weights(tmp / "sharded"), _weights(tmp / "single")) < WEIGHT_ATOL
    assert _max_diff(_weights(tmp / "sharded-after-load"), _weights(tmp / "single-after-load")) < WEIGHT_ATOL
    moved = _max_diff(_weights(tmp / "sharded"), _weights(tmp / "sharded-after-load"))
    assert moved > 10 * WEIGHT_ATOL  # the comparison is not vacuous: the extra step changed the weights


def test_each_rank_holds_only_its_shards(runs: dict) -> None:
    assert 0.45 < runs["local_fraction"] < 0.55  # rank 0's rows of every parameter, about half of them


def test_split_batch_gives_every_example_to_one_rank_balanced_by_tokens() -> None:
    rows = [(2, 10), (2, 40), (2, 12), (2, 9), (2, 30)]
    parts = [split_batch(rows, r, 2) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == list(range(5))
    assert parts == [[0, 1], [2, 3, 4]]  # 20+80 padded tokens against 24+18+60
    assert split_batch(rows[:1], 1, 2) == []  # fewer examples than ranks: rank 1 only pads


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_head_equals_full_logits(temperature: float) -> None:
    """The chunked head (a few rows of logits at a time) against [B, C, V] logits, with gradients."""
    backend = _single()
    rng = random.Random(3)
    batch = build_batch([(_tokens(rng, 4), _tokens(rng, 2 + 3 * i)) for i in range(3)], backend.pad_id,
                        torch.device("cpu"))
    chunked = chunked_token_logprobs(backend.model, batch, 4, temperature)
    full = losses.token_logprobs(completion_logits(backend.model, batch), batch.labels, temperature) * batch.mask
    assert torch.allclose(chunked, full, atol=1e-5)
    (g_chunked,) = torch.autograd.grad((chunked * batch.mask).sum(), [backend.model.model.norm.weight])
    (g_full,) = torch.autograd.grad(full.sum(), [backend.model.model.norm.weight])
    assert torch.allclose(g_chunked, g_full, atol=1e-4)


def test_resume_in_the_group_is_bit_exact(runs: dict) -> None:
    tmp: Path = runs["tmp"]
    first, again = runs["resume"]
    assert first == again
    a, b = _weights(tmp / "sharded-step"), _weights(tmp / "sharded-step-again")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _max_diff(a, _weights(tmp / "sharded")) > 10 * WEIGHT_ATOL  # the step moved the weights


def test_sharded_checkpoint_is_per_rank_dcp_with_an_hf_copy(runs: dict) -> None:
    ckpt: Path = runs["tmp"] / "sharded"
    names = {f.name for f in ckpt.iterdir()}
    assert {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
            "config.json", "worker_meta.json", "rng-0.pt", "rng-1.pt", "dcp"} <= names
    assert not any(n.endswith(".pt") and n.startswith(("optimizer", "master")) for n in names)
    assert len(list((ckpt / "dcp").glob("*.distcp"))) == 2  # one file of shards per rank
    assert not list(ckpt.parent.glob("*.tmp-*"))  # every temp dir renamed or removed


def test_sharded_checkpoint_loads_in_a_single_rank_trainer(runs: dict) -> None:
    """2 ranks -> 1: the DCP shards read back whole, masters and optimizer equal the single-rank trainer's."""
    tmp: Path = runs["tmp"]
    single_opt = torch.load(tmp / "single" / "optimizer.pt", weights_only=True)
    sharded_opt = checkpoint.indexed_optimizer_state(checkpoint.read_dcp(tmp / "sharded")["optim"])
    assert [len(g["params"]) for g in sharded_opt["param_groups"]] == [len(g["params"]) for g in single_opt["param_groups"]]
    for i, state in single_opt["state"].items():
        assert float(sharded_opt["state"][i]["step"]) == float(state["step"])
        assert torch.allclose(sharded_opt["state"][i]["exp_avg"], state["exp_avg"], atol=WEIGHT_ATOL)
    backend = _single()
    assert backend.load_checkpoint(tmp / "sharded", load_optimizer=True) == DPO_STEPS + 1
    live = dict(backend.model.named_parameters())
    saved = checkpoint.read_dcp(tmp / "sharded")["model"]
    assert all(torch.equal(live[n], saved[n]) for n in live)  # the fp32 shards, not the HF copy


def test_export_streams_the_dcp_shards_as_hf_safetensors(runs: dict, tmp_path: Path) -> None:
    """`promptcot export`'s reader: the 2 ranks' DCP shards, one tensor at a time, give the tensors of the ranks'
    HF copy (same names, dtype and values) in files of a bounded size, and transformers loads the result."""
    from transformers import AutoModelForCausalLM

    from promptcot_worker.dcp_export import compute_dtype, dcp_params, export_dcp, plan_files

    ckpt: Path = runs["tmp"] / "sharded"
    params = dcp_params(ckpt)
    largest = max(size.numel() for _, size in params) * 4
    groups = plan_files(params, compute_dtype(ckpt), largest)
    assert len(groups) > 1 and all(len(g) == 1 or sum(s.numel() * 4 for _, s in g) <= largest for g in groups)
    files = export_dcp(ckpt, tmp_path, max_file_bytes=largest)
    assert files[-1] == "model.safetensors.index.json" and len(files) == len(groups) + 1
    got, ref = checkpoint.read_safetensors(tmp_path), _weights(ckpt)
    assert sorted(got) == sorted(ref)
    assert all(got[k].dtype == ref[k].dtype and torch.equal(got[k], ref[k]) for k in ref)
    (tmp_path / "config.json").write_bytes((ckpt / "config.json").read_bytes())
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    live = dict(model.named_parameters())
    assert set(got) <= set(live) and all(torch.equal(live[n].detach(), got[n]) for n in got)
