"""Info, Health, Generate and ScoreLogProbs against a real tiny-random-llama worker over gRPC."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import torch

from conftest import RunningWorker, smollm2_tokenizer
from promptcot_worker.gen import promptcot_worker_pb2 as pb


def prompt(pid: str, text: str, seeds: list[int]) -> pb.PromptInput:
    return pb.PromptInput(id=pid, text=text, sample_seeds=seeds)


def generate(worker: RunningWorker, prompts: list[pb.PromptInput], **sampling) -> dict[tuple[str, int], pb.GenerateResponse]:
    params = {"temperature": 1.0, "max_tokens": 12, **sampling}
    logprobs = params.pop("logprobs", False)
    req = pb.GenerateRequest(prompts=prompts, sampling=pb.SamplingParams(**params), return_logprobs=logprobs)
    out = {(r.prompt_id, r.sample_index): r for r in worker.stub.Generate(req, timeout=120)}
    assert len(out) == sum(len(p.sample_seeds) for p in prompts)
    return out


def test_info_and_health(tiny_worker: RunningWorker) -> None:
    info = tiny_worker.stub.Info(pb.InfoRequest())
    assert info.proto_version == "promptcot.worker.v1"
    assert info.worker_id == "tiny" and info.pid == tiny_worker.ready["pid"]
    assert info.backend == "transformers" and info.model_name == "tiny-random-llama"
    assert info.device == ("cuda:0" if torch.cuda.is_available() else "cpu") and info.dtype == "float32"
    assert 0 < info.trainable_parameters == info.num_parameters
    assert info.vocab_size == 49152 and 2 in info.eos_token_ids and info.has_chat_template
    health = tiny_worker.stub.Health(pb.HealthRequest())
    assert health.status == pb.HealthResponse.READY


def test_ready_line_matches_process(tiny_worker: RunningWorker) -> None:
    assert set(tiny_worker.ready) == {"port", "pid", "worker_id"}
    assert tiny_worker.ready["pid"] == tiny_worker.proc.pid and tiny_worker.ready["worker_id"] == "tiny"


def test_same_seed_same_tokens_and_seeds_differ(tiny_worker: RunningWorker) -> None:
    first = generate(tiny_worker, [prompt("a", "The cat", [11, 12, 13])])
    again = generate(tiny_worker, [prompt("a", "The cat", [11, 12, 13])])
    assert all(first[k].token_ids == again[k].token_ids and first[k].text == again[k].text for k in first)
    tokens = {tuple(r.token_ids) for r in first.values()}
    assert len(tokens) == 3, "different seeds should give different samples"


def test_sample_independent_of_batch_company(tiny_worker: RunningWorker) -> None:
    """A sample depends on its own seed only: not on the other prompts, nor on n, nor on its index."""
    crowd = generate(tiny_worker, [
        prompt("x", "Once upon a time", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        prompt("y", "Hello", [42]),
        prompt("z", "Zebra", [5]),
    ])
    alone = generate(tiny_worker, [prompt("y", "Hello", [42])])
    assert alone[("y", 0)].token_ids == crowd[("y", 0)].token_ids
    subset = generate(tiny_worker, [prompt("x", "Once upon a time", [9, 3])])
    assert subset[("x", 0)].token_ids == crowd[("x", 8)].token_ids  # seed 9 sat at index 8 (second chunk)
    assert subset[("x", 1)].token_ids == crowd[("x", 2)].token_ids


def test_greedy_is_seed_independent(tiny_worker: RunningWorker) -> None:
    out = generate(tiny_worker, [prompt("g", "The cat", [1, 2])], temperature=0.0)
    assert out[("g", 0)].token_ids == out[("g", 1)].token_ids


def test_prompt_forms_and_response_fields(tiny_worker: RunningWorker) -> None:
    chat = pb.PromptInput(id="c", messages=[pb.ChatMessage(role="user", content="hi")], sample_seeds=[3])
    out = generate(tiny_worker, [chat], max_tokens=4)
    r = out[("c", 0)]
    assert r.prompt_token_ids[:1] == [1]  # <|im_start|> from the chat template
    assert r.weights_version >= 0 and len(r.token_ids) == 4 and r.finish_reason == "length"
    by_ids = generate(tiny_worker, [pb.PromptInput(id="c", token_ids=r.prompt_token_ids, sample_seeds=[3])], max_tokens=4)
    assert by_ids[("c", 0)].token_ids == r.token_ids


def test_max_tokens_and_stop_strings(tiny_worker: RunningWorker) -> None:
    base = generate(tiny_worker, [prompt("s", "Numbers:", [77])], max_tokens=24)[("s", 0)]
    assert base.finish_reason == "length" and len(base.token_ids) == 24
    text = base.text
    stop = next(text[i : i + 2] for i in range(4, len(text) - 2) if text[i : i + 2].isascii() and text[i : i + 2].strip())
    cut = generate(tiny_worker, [prompt("s", "Numbers:", [77])], max_tokens=24, stop=[stop, "@@never@@"])[("s", 0)]
    assert cut.finish_reason == "stop"
    assert cut.text == text[: text.find(stop)] and stop not in cut.text
    # Trained tokens are the graded text plus EOS (<|im_end|> = 2), not the tokens that held the stop.
    body = list(cut.token_ids[:-1])
    assert cut.token_ids[-1] == 2 and smollm2_tokenizer().decode(body) == cut.text
    assert len(cut.token_ids) <= 24


def test_score_matches_generate_logprobs(tiny_worker: RunningWorker) -> None:
    out = generate(tiny_worker, [prompt("p", "Two plus two", [5, 6]), prompt("q", "A", [8])], max_tokens=10, logprobs=True)
    items = [
        pb.ScoreItem(id=f"{k[0]}{k[1]}", prompt_token_ids=r.prompt_token_ids, completion_token_ids=r.token_ids)
        for k, r in out.items()
    ]
    scored = tiny_worker.stub.ScoreLogProbs(pb.ScoreRequest(items=items, return_token_logprobs=True))
    for item, res, gen in zip(items, scored.results, out.values()):
        assert res.id == item.id and res.num_tokens == len(gen.token_ids) == len(gen.logprobs)
        assert list(res.token_logprobs) == pytest.approx(list(gen.logprobs), abs=1e-4)
        assert res.sum_logprob == pytest.approx(sum(gen.logprobs), abs=1e-3)


def test_bad_requests_are_invalid_argument(tiny_worker: RunningWorker) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(tiny_worker.stub.Generate(pb.GenerateRequest(prompts=[prompt("e", "", [1])])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        list(tiny_worker.stub.Generate(pb.GenerateRequest(prompts=[prompt("e", "hi", [])])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        tiny_worker.stub.TrainStep(pb.TrainStepRequest(loss=pb.LOSS_KIND_UNSPECIFIED))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    too_big = pb.ScoreItem(prompt_token_ids=[1, 10**6], completion_token_ids=[2])
    with pytest.raises(grpc.RpcError) as err:
        tiny_worker.stub.ScoreLogProbs(pb.ScoreRequest(items=[too_big]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ok_then_bad = [prompt("ok", "fine", [1]), pb.PromptInput(id="bad", token_ids=[5] * 3000, sample_seeds=[1])]
    with pytest.raises(grpc.RpcError) as err:  # too long for 2048 positions: rejected before any sample streams
        list(tiny_worker.stub.Generate(pb.GenerateRequest(prompts=ok_then_bad)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_answers_while_busy(tiny_worker: RunningWorker) -> None:
    req = pb.GenerateRequest(prompts=[prompt("b", "Busy", list(range(8)))],
                             sampling=pb.SamplingParams(temperature=1.0, max_tokens=1500))
    stream = tiny_worker.stub.Generate(req, timeout=120)
    consumer = threading.Thread(target=lambda: list(_ignore_cancel(stream)), daemon=True)
    consumer.start()
    statuses = set()
    deadline = time.monotonic() + 30
    while pb.HealthResponse.BUSY not in statuses and time.monotonic() < deadline:
        statuses.add(tiny_worker.stub.Health(pb.HealthRequest(), timeout=5).status)
        time.sleep(0.05)
    stream.cancel()
    consumer.join(10)
    assert pb.HealthResponse.BUSY in statuses
    # The cancelled decode loop lets go of the model promptly.
    out = generate(tiny_worker, [prompt("after", "x", [1])], max_tokens=2)
    assert len(out) == 1


def _ignore_cancel(stream):
    try:
        yield from stream
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.CANCELLED
