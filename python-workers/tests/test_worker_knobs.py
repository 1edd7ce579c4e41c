"""Sampling knobs (top_k, min_p, repetition_penalty), chat-template kwargs and prompt_opens_think."""

from __future__ import annotations

import grpc
import pytest
import torch

from conftest import RunningWorker, start_worker
from promptcot_worker.gen import promptcot_worker_pb2 as pb
from promptcot_worker.sampling import SamplingConfig, filter_logits, make_generator, penalize_repeats, pick_tokens


def cfg(**kw) -> SamplingConfig:
    return SamplingConfig(**{"temperature": 1.0, "top_p": 0.0, "top_k": 0, "max_tokens": 8, "stop": (), **kw})


def test_min_p_drops_tokens_below_a_fraction_of_the_top() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.12, 0.08]]))
    kept = ~torch.isinf(filter_logits(logits, 0, 0.0, min_p=0.2))  # floor 0.1: 0.08 goes
    assert kept.tolist() == [[True, True, True, False]]
    assert (~torch.isinf(filter_logits(logits, 0, 0.0, min_p=1.0))).sum() == 1
    picks = pick_tokens(logits.expand(2000, -1).contiguous(), cfg(min_p=0.5), [make_generator(i) for i in range(2000)])
    assert set(picks.tolist()) == {0, 1}  # 0.3 >= 0.25 stays, 0.12 does not


def test_repetition_penalty_is_ctrl_style_and_per_row() -> None:
    logits = torch.tensor([[2.0, -1.0, 1.0], [2.0, -1.0, 1.0]])
    seen = torch.tensor([[True, True, False], [False, False, False]])
    out = penalize_repeats(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -2.0, 1.0], [2.0, -1.0, 1.0]]
    # Greedy too: row 0's seen top token loses to the unseen one; row 1 is untouched.
    assert pick_tokens(logits, cfg(temperature=0.0, repetition_penalty=3.0), [], seen).tolist() == [2, 0]
    with pytest.raises(ValueError):
        pick_tokens(logits, cfg(repetition_penalty=1.5), [make_generator(0)] * 2)


def generate(worker: RunningWorker, prompts: list[pb.PromptInput], kwargs_json: str = "", **sampling):
    params = {"temperature": 1.0, "max_tokens": 16, **sampling}
    req = pb.GenerateRequest(prompts=prompts, sampling=pb.SamplingParams(**params), chat_template_kwargs_json=kwargs_json)
    return {(r.prompt_id, r.sample_index): r for r in worker.stub.Generate(req, timeout=120)}


def text_prompt(pid: str, seeds: list[int]) -> pb.PromptInput:
    return pb.PromptInput(id=pid, text="Once upon a time", sample_seeds=seeds)


def test_knobs_over_grpc_change_samples_and_keep_per_sample_determinism(tiny_worker: RunningWorker) -> None:
    seeds = list(range(1, 9))
    plain = generate(tiny_worker, [text_prompt("p", seeds)])
    top1 = generate(tiny_worker, [text_prompt("p", seeds)], top_k=1)
    greedy = generate(tiny_worker, [text_prompt("p", [1])], temperature=0.0)
    assert all(r.token_ids == greedy[("p", 0)].token_ids for r in top1.values())  # top_k 1 = greedy
    assert len({tuple(r.token_ids) for r in plain.values()}) > 1

    min_p = generate(tiny_worker, [text_prompt("p", seeds)], min_p=1.0)  # only the top token survives
    assert all(r.token_ids == greedy[("p", 0)].token_ids for r in min_p.values())

    rep = {"repetition_penalty": 50.0, "temperature": 0.0, "max_tokens": 24}
    penalized = generate(tiny_worker, [text_prompt("p", [1])], **rep)[("p", 0)]
    prompt_ids = set(penalized.prompt_token_ids)
    assert len(set(penalized.token_ids)) == len(penalized.token_ids)  # nothing repeats
    assert not prompt_ids & set(penalized.token_ids)
    assert list(penalized.token_ids) != list(generate(tiny_worker, [text_prompt("p", [1])], temperature=0.0,
                                                      max_tokens=24)[("p", 0)].token_ids)

    knobs = {"top_k": 50, "min_p": 0.01, "repetition_penalty": 1.3}
    crowd = generate(tiny_worker, [text_prompt("p", seeds), pb.PromptInput(id="q", text="Hi", sample_seeds=[4])], **knobs)
    alone = generate(tiny_worker, [text_prompt("p", [6])], **knobs)
    assert alone[("p", 0)].token_ids == crowd[("p", 5)].token_ids  # seed 6 sat at index 5


def test_bad_knob_values_are_invalid_argument(tiny_worker: RunningWorker) -> None:
    for bad in ({"min_p": 1.5}, {"repetition_penalty": -1.0}):
        with pytest.raises(grpc.RpcError) as err:
            generate(tiny_worker, [text_prompt("p", [1])], **bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def qwen3_worker():
    worker = start_worker("--model", "tiny-random-qwen3", "--threads", "1", "--seed", "2")
    yield worker
    worker.stop()


def chat(pid: str) -> pb.PromptInput:
    return pb.PromptInput(id=pid, messages=[pb.ChatMessage(role="user", content="What is 2+2?")], sample_seeds=[1])


def test_thinking_template_opens_think_and_kwargs_close_it(qwen3_worker: RunningWorker) -> None:
    from conftest import smollm2_tokenizer

    info = qwen3_worker.stub.Info(pb.InfoRequest())
    assert info.model_name == "tiny-random-qwen3"
    thinking = generate(qwen3_worker, [chat("t")], max_tokens=4)[("t", 0)]
    assert thinking.prompt_opens_think
    assert smollm2_tokenizer().decode(thinking.prompt_token_ids).endswith("<|im_start|>assistant\n<think>\n")
    off = generate(qwen3_worker, [chat("t")], '{"enable_thinking": false}', max_tokens=4)[("t", 0)]
    assert not off.prompt_opens_think
    assert smollm2_tokenizer().decode(off.prompt_token_ids).endswith("<think>\n\n</think>\n\n")
    # The flag reads the prompt, whatever form it came in.
    by_ids = pb.PromptInput(id="i", token_ids=thinking.prompt_token_ids, sample_seeds=[1])
    assert generate(qwen3_worker, [by_ids], max_tokens=2)[("i", 0)].prompt_opens_think


def test_plain_template_does_not_open_think(tiny_worker: RunningWorker) -> None:
    assert not generate(tiny_worker, [chat("c")], max_tokens=2)[("c", 0)].prompt_opens_think


@pytest.mark.parametrize("raw", ["[1, 2]", "not json", '"enable_thinking"', '{"tokenize": false}'])
def test_chat_template_kwargs_must_be_a_json_object(qwen3_worker: RunningWorker, raw: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        generate(qwen3_worker, [chat("t")], raw, max_tokens=2)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chat_template_kwargs_json" in err.value.details()
