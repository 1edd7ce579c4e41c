"""GRPO on a real tiny-random-llama worker over gRPC: scoring at a temperature, old log-probs reaching the
clipped ratio, and the weights_version guard on Generate (FAILED_PRECONDITION) with a synced second worker.
"""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest
import torch

from conftest import TINY, RunningWorker, start_worker
from promptcot_worker.gen import promptcot_worker_pb2 as pb
from promptcot_worker.models import load_source


def tokens(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(3, 2000) for _ in range(n)]


def items(seed: int, n: int = 3) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)
    return [(tokens(rng, 5), tokens(rng, 4 + i)) for i in range(n)]


def score(worker: RunningWorker, pairs: list[tuple[list[int], list[int]]], temperature: float = 0.0,
          reference: str = "") -> list[list[float]]:
    req = pb.ScoreRequest(
        items=[pb.ScoreItem(id=str(i), prompt_token_ids=p, completion_token_ids=c) for i, (p, c) in enumerate(pairs)],
        return_token_logprobs=True, logit_temperature=temperature, reference=reference,
    )
    return [list(r.token_logprobs) for r in worker.stub.ScoreLogProbs(req, timeout=60).results]


def grpo_step(worker: RunningWorker, examples: list[pb.TrainExample], step_id: str, **hyper) -> pb.TrainStepResponse:
    params = {"learning_rate": 1e-2, "clip_low": 0.2, "clip_high": 0.28, **hyper}
    req = pb.TrainStepRequest(step_id=step_id, loss=pb.GRPO, examples=examples, hyper=pb.TrainHyper(**params))
    return worker.stub.TrainStep(req, timeout=120)


def generate(worker: RunningWorker, expected: int) -> list[int]:
    req = pb.GenerateRequest(
        prompts=[pb.PromptInput(id="p", token_ids=[5, 6, 7, 8], sample_seeds=[11])],
        sampling=pb.SamplingParams(temperature=1.0, max_tokens=6), expected_weights_version=expected,
    )
    return [t for r in worker.stub.Generate(req, timeout=60) for t in r.token_ids]


def test_scoring_at_a_temperature_matches_softmax_of_scaled_logits(tiny_worker: RunningWorker) -> None:
    (prompt, completion), = items(1, 1)
    got = score(tiny_worker, [(prompt, completion)], temperature=1.7)[0]
    # The same weights in this process (tiny models are seeded), scaled logits by hand.
    model = load_source("tiny-random-llama", 7, torch.float32).model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + completion])).logits[0].float()
    picked = logits[len(prompt) - 1 : -1]
    want = torch.log_softmax(picked / 1.7, dim=-1)[torch.arange(len(completion)), torch.tensor(completion)]
    assert got == pytest.approx(want.tolist(), abs=1e-4)
    assert score(tiny_worker, [(prompt, completion)])[0] != pytest.approx(got, abs=1e-3)  # T matters


def test_old_logprobs_drive_the_clipped_ratio(tiny_worker: RunningWorker) -> None:
    pairs = items(2)
    old = score(tiny_worker, pairs, temperature=1.3)

    def examples(shift: float, advantage: float = 1.0) -> list[pb.TrainExample]:
        return [pb.TrainExample(prompt_token_ids=p, completion_token_ids=c, advantage=advantage,
                                old_logprobs=[v + shift for v in lp], ref_logprobs=lp)
                for (p, c), lp in zip(pairs, old)]

    # old log-probs 1 nat below the policy's: ratio e > 1 + clip_high with a positive advantage, so every
    # token is clipped and no gradient flows (with the ratio fixed at 1, as before, nothing would be clipped).
    clipped = grpo_step(tiny_worker, examples(-1.0), "clip", logit_temperature=1.3).metrics
    assert clipped["clip_fraction"] == pytest.approx(1.0)
    assert clipped["grad_norm"] == 0.0
    # Dual clip: old log-probs 3 nats below, ratio e^3 ~ 20 with advantage -1; each token's loss is capped at
    # -clip_ratio_c * A (3 when the wire leaves it 0, as an older controller does), with no gradient.
    dual = grpo_step(tiny_worker, examples(-3.0, -1.0), "dual", logit_temperature=1.3).metrics
    assert dual["dual_clip_fraction"] == pytest.approx(1.0) and dual["grad_norm"] == 0.0
    assert dual["loss"] == pytest.approx(3.0, abs=1e-4)
    dual5 = grpo_step(tiny_worker, examples(-3.0, -1.0), "dual-5", logit_temperature=1.3, clip_ratio_c=5.0).metrics
    assert dual5["loss"] == pytest.approx(5.0, abs=1e-4)
    # The behaviour policy's own log-probs: ratio ~1, nothing clipped, a real update; k3 KL at the start ~0.
    fresh = grpo_step(tiny_worker, examples(0.0), "on-policy", logit_temperature=1.3, kl_coef=0.1).metrics
    assert fresh["clip_fraction"] == 0.0 and fresh["dual_clip_fraction"] == 0.0 and fresh["grad_norm"] > 0
    assert fresh["loss"] == pytest.approx(-1.0, abs=1e-3)  # -mean(ratio * A) with ratio 1, A 1, KL 0
    assert abs(fresh["kl"]) < 1e-5


def test_bad_grpo_inputs_are_refused(tiny_worker: RunningWorker) -> None:
    (p, c), = items(3, 1)
    short = [pb.TrainExample(prompt_token_ids=p, completion_token_ids=c, advantage=1.0, old_logprobs=[0.0])]
    with pytest.raises(grpc.RpcError) as err:
        grpo_step(tiny_worker, short, "bad-old")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "old_logprobs has 1 values" in err.value.details()
    no_ref = [pb.TrainExample(prompt_token_ids=p, completion_token_ids=c, advantage=1.0)]
    with pytest.raises(grpc.RpcError) as err:
        grpo_step(tiny_worker, no_ref, "bad-ref", kl_coef=0.1)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ref_logprobs" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        grpo_step(tiny_worker, no_ref, "bad-dual", clip_ratio_c=0.5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "clip_ratio_c > 1" in err.value.details()


def test_generate_refuses_other_weights_and_a_synced_worker_agrees(tiny_worker: RunningWorker, tmp_path: Path) -> None:
    (p, c), = items(4, 1)
    step = grpo_step(tiny_worker, [pb.TrainExample(prompt_token_ids=p, completion_token_ids=c, advantage=1.0)], "sync-1")
    version = step.weights_version
    assert version > 0
    with pytest.raises(grpc.RpcError) as err:
        generate(tiny_worker, version + 1)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"holds weights_version {version}" in err.value.details()
    trainer_tokens = generate(tiny_worker, version)
    assert generate(tiny_worker, 0) == trainer_tokens  # 0 = no check

    ckpt = tmp_path / "step"
    tiny_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(ckpt), include_optimizer=True), timeout=120)
    rollout = start_worker(*TINY, "--seed", "7", "--role", "rollout", "--worker-id", "rollout")
    try:
        with pytest.raises(grpc.RpcError) as err:
            generate(rollout, version)  # base weights: refused until synced
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        loaded = rollout.stub.LoadCheckpoint(pb.LoadCheckpointRequest(path=str(ckpt)), timeout=120)
        assert loaded.weights_version == version
        assert rollout.stub.Health(pb.HealthRequest()).weights_version == version
        assert generate(rollout, version) == trainer_tokens  # same weights, same seed: same sample
    finally:
        rollout.stop()


def test_frozen_reference_stays_at_the_base_and_at_a_checkpoint(tiny_worker: RunningWorker, tmp_path: Path) -> None:
    pairs = items(5)
    # "base" is the model as the worker loaded it, whatever the policy has learned since (the same weights
    # in this process: tiny models are seeded), at the asked temperature
    base = score(tiny_worker, pairs, 1.3, reference="base")
    model = load_source("tiny-random-llama", 7, torch.float32).model.eval()
    for (p, c), got in zip(pairs, base):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1].float() / 1.3
        assert got == pytest.approx(torch.log_softmax(logits, -1)[torch.arange(len(c)), torch.tensor(c)].tolist(), abs=1e-4)
    before = score(tiny_worker, pairs, 1.3)
    examples = [pb.TrainExample(prompt_token_ids=p, completion_token_ids=c, advantage=1.0) for p, c in pairs]
    grpo_step(tiny_worker, examples, "ref-1", learning_rate=0.05, logit_temperature=1.3)
    after = score(tiny_worker, pairs, 1.3)
    assert max(abs(a - b) for x, y in zip(after, before) for a, b in zip(x, y)) > 1e-2  # the policy moved
    assert score(tiny_worker, pairs, 1.3, reference="base") == base  # the reference did not (bit for bit)
    # a checkpoint as the reference: its scores, and still its scores after the policy moves on
    ckpt = tmp_path / "ref-ckpt"
    tiny_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(ckpt), include_optimizer=False), timeout=120)
    assert score(tiny_worker, pairs, 1.3, reference=str(ckpt)) == after
    grpo_step(tiny_worker, examples, "ref-2", learning_rate=0.05, logit_temperature=1.3)
    assert score(tiny_worker, pairs, 1.3) != after
    assert score(tiny_worker, pairs, 1.3, reference=str(ckpt)) == after
    with pytest.raises(grpc.RpcError) as err:
        score(tiny_worker, pairs, reference=str(tmp_path / "missing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no checkpoint directory" in err.value.details()
