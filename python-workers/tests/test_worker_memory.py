"""Long-context memory: chunked log-probs equal the full-logits ones (values and gradients), blocks are
recomputed in the backward pass, no [B, T, V] logits tensor is kept for backward, and micro batches
respect a token budget."""

from __future__ import annotations

import random

import pytest
import torch

from conftest import TINY, start_worker
from promptcot_worker import losses
from promptcot_worker.backend_transformers import TransformersBackend
from promptcot_worker.batch import build_batch, completion_logits, micro_batches
from promptcot_worker.gen import promptcot_worker_pb2 as pb
from promptcot_worker.memory import chunked_token_logprobs, transformer_blocks
from promptcot_worker.models import load_source
from promptcot_worker.schema import Example, Hyper, LossKind


def tiny_backend(**kwargs) -> TransformersBackend:
    torch.set_num_threads(1)
    loaded = load_source("tiny-random-llama", 11, torch.float32)
    return TransformersBackend(loaded, torch.device("cpu"), "tiny-random-llama", **kwargs)


def ragged_batch(b: TransformersBackend):
    rng = random.Random(1)
    pairs = [([rng.randrange(3, 2000) for _ in range(rng.randint(1, 9))],
              [rng.randrange(3, 2000) for _ in range(rng.randint(1, 40))]) for _ in range(5)]
    return build_batch(pairs, b.pad_id, b.device)


def grads_of(b: TransformersBackend, fn) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    b.model.zero_grad(set_to_none=True)
    batch = ragged_batch(b)
    tok = fn(batch)
    (tok * batch.mask * torch.linspace(-1, 1, tok.shape[-1])).sum().backward()
    return (tok * batch.mask).detach(), {n: p.grad.clone() for n, p in b.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunked_logprobs_and_gradients_match_full_logits(chunk: int) -> None:
    b = tiny_backend()
    full_vals, full_grads = grads_of(b, lambda x: losses.token_logprobs(completion_logits(b.model, x), x.labels))
    vals, grads = grads_of(b, lambda x: chunked_token_logprobs(b.model, x, chunk))
    assert torch.allclose(vals, full_vals, atol=1e-5, rtol=0)
    assert set(grads) == set(full_grads)
    for name, g in grads.items():
        assert torch.allclose(g, full_grads[name], atol=1e-5, rtol=1e-4), name


def count_calls(module: torch.nn.Module, calls: list[int]) -> None:
    # Not a forward hook: those do not fire when torch.utils.checkpoint replays an HF block.
    inner = module.forward

    def forward(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    module.forward = forward


def test_blocks_are_recomputed_in_backward_only_when_checkpointing() -> None:
    counts = {}
    for flag in (False, True):
        b = tiny_backend(gradient_checkpointing=flag)
        calls: list[int] = []
        for block in transformer_blocks(b.model):
            count_calls(block.mlp, calls)
        ex = [Example(prompt=[5, 6, 7], completion=[8, 9, 10, 11])]
        b.train_step("s", LossKind.SFT, ex, Hyper(learning_rate=0.0))
        counts[flag] = len(calls)
        with torch.no_grad():  # scoring never recomputes
            calls.clear()
            b.score([([5, 6, 7], [8, 9])], want_tokens=False)
            assert len(calls) == len(transformer_blocks(b.model))
    n = len(transformer_blocks(b.model))
    assert counts == {False: n, True: 2 * n}


def largest_saved_for_backward(b: TransformersBackend, batch) -> int:
    """numel of the largest tensor autograd keeps for the backward pass of one DPO-style forward."""
    largest = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal largest
        largest = max(largest, t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        b.token_logprobs(batch).sum().backward()
    return largest


def test_no_full_logits_tensor_is_kept_for_backward() -> None:
    new, old = tiny_backend(), tiny_backend(logprob_chunk_tokens=0, gradient_checkpointing=False)
    batch = ragged_batch(new)
    vocab = new.model.config.vocab_size
    logits_numel = batch.labels.numel() * vocab
    assert largest_saved_for_backward(old, batch) >= logits_numel  # the old path keeps [B, C, V]
    assert largest_saved_for_backward(new, batch) < vocab  # not even one row of logits outlives its chunk


def test_micro_batches_respect_rows_and_token_budget() -> None:
    rows = [(2, 10), (2, 10), (2, 30), (2, 5), (2, 100), (2, 5)]  # DPO: two rows per pair
    assert micro_batches(rows, 0, 0) == [[0, 1, 2, 3, 4, 5]]
    assert micro_batches(rows, 2, 0) == [[0, 1], [2, 3], [4, 5]]
    # 120 padded tokens: pairs 0-1 take 4 x 10; adding pair 2 makes 6 x 30 = 180.
    assert micro_batches(rows, 0, 120) == [[0, 1], [2, 3], [4], [5]]  # pair 4 alone is over: on its own
    assert micro_batches(rows, 1, 120) == [[i] for i in range(6)]


def test_token_budget_over_grpc_matches_the_unsplit_step(tmp_path) -> None:
    worker = start_worker(*TINY, "--seed", "5")
    try:
        rng = random.Random(3)
        batch = [pb.TrainExample(prompt_token_ids=[rng.randrange(3, 2000) for _ in range(4)],
                                 completion_token_ids=[rng.randrange(3, 2000) for _ in range(n)]) for n in (4, 5, 30, 6)]
        start = tmp_path / "start"
        worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(start)))

        def step(step_id: str, **hyper) -> dict[str, float]:
            h = pb.TrainHyper(learning_rate=0.0, **hyper)
            req = pb.TrainStepRequest(step_id=step_id, loss=pb.SFT, examples=batch, hyper=h)
            return dict(worker.stub.TrainStep(req, timeout=60).metrics)

        whole = step("whole")
        worker.stub.LoadCheckpoint(pb.LoadCheckpointRequest(path=str(start)))
        split = step("split", max_tokens_per_micro_batch=20)  # 8 + 9 tokens fit; 34 and 10 go alone
        assert whole["micro_batches"] == 1 and split["micro_batches"] == 3
        assert split["loss"] == pytest.approx(whole["loss"], abs=1e-5)
        assert split["grad_norm"] == pytest.approx(whole["grad_norm"], rel=1e-4)
    finally:
        worker.stop()


def test_a_worker_started_without_checkpointing_keeps_activations_and_trains_the_same() -> None:
    """--no-gradient-checkpointing (parallel.activation_checkpointing: false) reaches the backend over a real
    process: Info says the blocks are not checkpointed, and an SFT step gives the checkpointed step's numbers."""
    rng = random.Random(11)
    batch = [pb.TrainExample(prompt_token_ids=[rng.randrange(3, 2000) for _ in range(4)],
                             completion_token_ids=[rng.randrange(3, 2000) for _ in range(n)]) for n in (5, 9)]
    seen = {}
    for flag in ("--gradient-checkpointing", "--no-gradient-checkpointing"):
        worker = start_worker(*TINY, "--seed", "5", flag)
        try:
            checkpoints = worker.stub.Info(pb.InfoRequest(), timeout=30).checkpoints_blocks
            req = pb.TrainStepRequest(step_id="s", loss=pb.SFT, examples=batch, hyper=pb.TrainHyper(learning_rate=1e-3))
            seen[flag] = (checkpoints, dict(worker.stub.TrainStep(req, timeout=60).metrics))
        finally:
            worker.stop()
    (on, on_metrics), (off, off_metrics) = seen["--gradient-checkpointing"], seen["--no-gradient-checkpointing"]
    assert on is True and off is False
    assert off_metrics["loss"] == pytest.approx(on_metrics["loss"], abs=1e-6)
    assert off_metrics["grad_norm"] == pytest.approx(on_metrics["grad_norm"], rel=1e-5)


def _sharded_rank(rank: int, world: int, port: int, out: str) -> None:
    """Each rank starts the sharded backend with and without checkpointing and counts its blocks' MLP runs in a step."""
    import os

    import torch.distributed as dist

    from promptcot_worker.sharded import Rank, ShardedBackend, init_group

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    me = Rank(rank, world)
    init_group(me, torch.device("cpu"))
    seen = {}
    for flag in (True, False):
        backend = ShardedBackend.start("tiny-random-llama", 0, torch.device("cpu"), me, torch.float32,
                                       gradient_checkpointing=flag)
        calls: list[int] = []
        for block in transformer_blocks(backend.model):
            count_calls(block.mlp, calls)
        ex = [Example(prompt=[5, 6, 7], completion=[8, 9, 10, 11]), Example(prompt=[5, 6], completion=[9, 10])]
        backend.train_step("s", LossKind.SFT, ex, Hyper(learning_rate=0.0))
        seen[flag] = (backend.info()["checkpoints_blocks"], len(calls), len(transformer_blocks(backend.model)))
    if rank == 0:
        torch.save(seen, f"{out}/seen.pt")
    dist.destroy_process_group()


def test_sharded_ranks_without_checkpointing_run_each_block_once(tmp_path) -> None:
    """The FSDP ranks honour --no-gradient-checkpointing too (server.py hands it to ShardedBackend.start)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_sharded_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    seen = torch.load(tmp_path / "seen.pt")
    (on, on_calls, blocks), (off, off_calls, _) = seen[True], seen[False]
    assert on is True and off is False
    assert on_calls == 2 * blocks and off_calls == blocks  # checkpointed blocks run again in the backward
