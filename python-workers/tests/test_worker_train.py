"""TrainStep, SaveCheckpoint and LoadCheckpoint against a real tiny-random-llama worker over gRPC.

The tests share one worker and each changes its weights, so every test measures relative to the state
it finds (or restores a checkpoint it wrote).
"""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest

from conftest import TINY, RunningWorker, start_worker
from promptcot_worker.gen import promptcot_worker_pb2 as pb


def tokens(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(3, 2000) for _ in range(n)]


def score(worker: RunningWorker, items: list[tuple[list[int], list[int]]]) -> list[pb.ScoreResult]:
    req = pb.ScoreRequest(
        items=[pb.ScoreItem(id=str(i), prompt_token_ids=p, completion_token_ids=c) for i, (p, c) in enumerate(items)],
        return_token_logprobs=True,
    )
    return list(worker.stub.ScoreLogProbs(req, timeout=60).results)


def dpo_batch(worker: RunningWorker, seed: int, pairs: int = 4) -> list[pb.TrainExample]:
    """Pairs with reference log-probs taken from the worker's current weights."""
    rng = random.Random(seed)
    raw = [(tokens(rng, 6), tokens(rng, 5 + i), tokens(rng, 4 + i)) for i in range(pairs)]
    refs = score(worker, [(p, c) for p, c, _ in raw] + [(p, r) for p, _, r in raw])
    return [
        pb.TrainExample(prompt_token_ids=p, chosen_token_ids=c, rejected_token_ids=r,
                        ref_chosen_logp=refs[i].sum_logprob, ref_rejected_logp=refs[pairs + i].sum_logprob)
        for i, (p, c, r) in enumerate(raw)
    ]


def train(worker: RunningWorker, loss: int, examples: list[pb.TrainExample], step_id: str, **hyper) -> pb.TrainStepResponse:
    params = {"learning_rate": 1e-2, "beta": 0.1, **hyper}
    req = pb.TrainStepRequest(step_id=step_id, loss=loss, examples=examples, hyper=pb.TrainHyper(**params))
    return worker.stub.TrainStep(req, timeout=120)


def test_dpo_steps_lower_the_loss(tiny_worker: RunningWorker) -> None:
    batch = dpo_batch(tiny_worker, seed=1)
    version = tiny_worker.stub.Info(pb.InfoRequest()).weights_version
    results = [train(tiny_worker, pb.DPO, batch, f"dpo-{i}", micro_batch_size=2) for i in range(4)]
    loss = [r.metrics["loss"] for r in results]
    assert loss[0] == pytest.approx(0.6931, abs=2e-3)  # policy == reference: log 2
    assert all(b < a for a, b in zip(loss, loss[1:])) and loss[-1] < loss[0] - 0.05
    last = results[-1].metrics
    assert last["rewards/margin"] > 0 and last["rewards/accuracy"] > 0.5
    assert last["rewards/margin"] == pytest.approx(last["rewards/chosen"] - last["rewards/rejected"], abs=1e-6)
    assert {"grad_norm", "num_examples", "tokens", "seconds"} <= set(last) and last["num_examples"] == 4
    assert [r.weights_version for r in results] == [version + 1 + i for i in range(4)]


def test_sft_steps_lower_the_loss(tiny_worker: RunningWorker) -> None:
    rng = random.Random(2)
    batch = [pb.TrainExample(prompt_token_ids=tokens(rng, 5), completion_token_ids=tokens(rng, 8)) for _ in range(3)]
    loss = [train(tiny_worker, pb.SFT, batch, f"sft-{i}", max_grad_norm=1.0).metrics["loss"] for i in range(3)]
    assert all(b < a for a, b in zip(loss, loss[1:]))


def test_grpo_step_runs(tiny_worker: RunningWorker) -> None:
    rng = random.Random(3)
    batch = [pb.TrainExample(prompt_token_ids=tokens(rng, 5), completion_token_ids=tokens(rng, 6), advantage=a)
             for a in (1.0, -1.0)]
    metrics = train(tiny_worker, pb.GRPO, batch, "grpo-0").metrics
    assert metrics["clip_fraction"] == 0.0 and metrics["grad_norm"] > 0


def test_repeated_step_id_is_not_applied_twice(tiny_worker: RunningWorker) -> None:
    rng = random.Random(4)
    batch = [pb.TrainExample(prompt_token_ids=tokens(rng, 5), completion_token_ids=tokens(rng, 8))]
    first = train(tiny_worker, pb.SFT, batch, "once")
    retry = train(tiny_worker, pb.SFT, batch, "once")
    assert retry.weights_version == first.weights_version and dict(retry.metrics) == dict(first.metrics)


def test_micro_batches_accumulate_to_full_batch_gradient(tiny_worker: RunningWorker, tmp_path: Path) -> None:
    batch = dpo_batch(tiny_worker, seed=5, pairs=4)
    start = tmp_path / "start"
    tiny_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(start)))
    whole = train(tiny_worker, pb.DPO, batch, "acc-whole", learning_rate=0.0).metrics
    tiny_worker.stub.LoadCheckpoint(pb.LoadCheckpointRequest(path=str(start)))
    split = train(tiny_worker, pb.DPO, batch, "acc-split", learning_rate=0.0, micro_batch_size=1).metrics
    assert split["loss"] == pytest.approx(whole["loss"], abs=1e-5)
    assert split["grad_norm"] == pytest.approx(whole["grad_norm"], rel=1e-4)


def test_checkpoint_round_trip_is_exact(tiny_worker: RunningWorker, tmp_path: Path) -> None:
    rng = random.Random(6)
    probe = [(tokens(rng, 7), tokens(rng, 9)) for _ in range(3)]
    sft = [pb.TrainExample(prompt_token_ids=p, completion_token_ids=c) for p, c in probe]
    train(tiny_worker, pb.SFT, sft, "ckpt-warm")  # so there is optimizer state to save
    before = score(tiny_worker, probe)
    saved_version = tiny_worker.stub.Info(pb.InfoRequest()).weights_version
    ckpt = tmp_path / "runs" / "step-1"
    saved = tiny_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(ckpt), include_optimizer=True))
    assert saved.path == str(ckpt) and saved.bytes > 0
    names = {p.name for p in ckpt.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "optimizer.pt", "rng.pt", "worker_meta.json"} <= names
    assert not [p for p in ckpt.parent.iterdir() if ".tmp-" in p.name]

    train(tiny_worker, pb.SFT, sft, "ckpt-drift")
    assert [r.token_logprobs for r in score(tiny_worker, probe)] != [r.token_logprobs for r in before]

    loaded = tiny_worker.stub.LoadCheckpoint(pb.LoadCheckpointRequest(path=str(ckpt), load_optimizer=True))
    assert loaded.weights_version == saved_version
    after = score(tiny_worker, probe)
    assert [list(r.token_logprobs) for r in after] == [list(r.token_logprobs) for r in before]  # bit-identical
    assert [r.sum_logprob for r in after] == [r.sum_logprob for r in before]

    fresh = start_worker(*TINY, "--seed", "999", "--init-checkpoint", str(ckpt))
    try:
        assert [list(r.token_logprobs) for r in score(fresh, probe)] == [list(r.token_logprobs) for r in before]
        assert fresh.stub.Info(pb.InfoRequest()).weights_version == saved_version
    finally:
        fresh.stop()


def test_save_to_existing_path_fails_cleanly(tiny_worker: RunningWorker, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(grpc.RpcError) as err:
        tiny_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(taken)))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no temp dir left behind
    with pytest.raises(grpc.RpcError) as err:
        tiny_worker.stub.LoadCheckpoint(pb.LoadCheckpointRequest(path=str(tmp_path / "missing")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert tiny_worker.stub.Health(pb.HealthRequest()).status == pb.HealthResponse.READY


def test_rng_states_round_trip_without_pickle(tmp_path: Path) -> None:
    import numpy as np
    import torch

    from promptcot_worker import checkpoint

    random.random(), np.random.randn(), torch.rand(1)  # noqa: B018 - move every RNG off its seed
    torch.save(checkpoint.rng_state(), tmp_path / checkpoint.RNG_FILE)
    first = (random.random(), float(np.random.randn()), float(torch.rand(1)))
    checkpoint.load_rng(tmp_path)  # loads with weights_only=True
    assert (random.random(), float(np.random.randn()), float(torch.rand(1))) == first
