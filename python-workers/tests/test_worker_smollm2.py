"""The real SmolLM2-135M-Instruct through a real worker. Skip with `-m "not slow"`."""

from __future__ import annotations

import pytest

from conftest import start_worker
from promptcot_worker.gen import promptcot_worker_pb2 as pb

pytestmark = pytest.mark.slow


def test_smollm2_generates_and_is_batch_invariant() -> None:
    worker = start_worker("--model", "smollm2-135m-instruct", "--worker-id", "smol")
    try:
        info = worker.stub.Info(pb.InfoRequest())
        assert info.model_name == "smollm2-135m-instruct" and info.has_chat_template
        assert 130_000_000 < info.num_parameters < 140_000_000 and 2 in info.eos_token_ids

        question = [pb.ChatMessage(role="user", content="What is the capital of France?")]
        greedy = pb.GenerateRequest(
            prompts=[pb.PromptInput(id="q", messages=question, sample_seeds=[0])],
            sampling=pb.SamplingParams(temperature=0.0, max_tokens=16),
        )
        answer = next(iter(worker.stub.Generate(greedy, timeout=120)))
        assert "Paris" in answer.text and answer.finish_reason == "stop" and answer.token_ids[-1] == 2

        def sample(seeds: list[int]) -> dict[int, pb.GenerateResponse]:
            req = pb.GenerateRequest(
                prompts=[pb.PromptInput(id="s", messages=question, sample_seeds=seeds)],
                sampling=pb.SamplingParams(temperature=1.0, top_p=0.95, max_tokens=12),
                return_logprobs=True,
            )
            return {r.sample_index: r for r in worker.stub.Generate(req, timeout=120)}

        crowd, alone = sample([101, 102, 103]), sample([103])
        # Bit-identical log-probs: the decode batch shape does not depend on how many samples were asked for.
        assert alone[0].token_ids == crowd[2].token_ids and list(alone[0].logprobs) == list(crowd[2].logprobs)
    finally:
        worker.stop()
