"""Tokenize and Embed against a real tiny-random-llama worker over gRPC, checked with the tokenizer itself."""

from __future__ import annotations

import math

import grpc
import pytest
import torch

from conftest import RunningWorker
from promptcot_worker.gen import promptcot_worker_pb2 as pb
from promptcot_worker.models import load_source

CHAT = [pb.ChatMessage(role="user", content="What is 2 + 3?")]


@pytest.fixture(scope="module")
def tokenizer():
    # The tiny model carries SmolLM2's tokenizer; load it independently of the worker to check its answers.
    return load_source("tiny-random-llama", 0, torch.float32).tokenizer


def tokenize(worker: RunningWorker, *items: pb.TokenizeItem, kwargs: str = "") -> list[pb.TokenizedItem]:
    res = worker.stub.Tokenize(pb.TokenizeRequest(items=list(items), chat_template_kwargs_json=kwargs), timeout=60)
    return list(res.items)


def embed(worker: RunningWorker, texts: list[str]) -> list[list[float]]:
    return [list(e.values) for e in worker.stub.Embed(pb.EmbedRequest(texts=texts), timeout=120).embeddings]


def test_chat_prompt_plus_completion_round_trips(tiny_worker: RunningWorker, tokenizer) -> None:
    completion = "The answer is 5."
    [out] = tokenize(tiny_worker, pb.TokenizeItem(id="a", messages=CHAT, completion=completion))
    template = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}],
                                             add_generation_prompt=True, tokenize=False)
    assert out.id == "a" and template.endswith("assistant\n")
    assert tokenizer.decode(list(out.prompt_token_ids) + list(out.completion_token_ids)) == template + completion
    assert tokenizer.decode(list(out.completion_token_ids)) == completion
    assert not out.prompt_opens_think


def test_prompt_ids_equal_what_generate_feeds_the_model(tiny_worker: RunningWorker) -> None:
    [tok] = tokenize(tiny_worker, pb.TokenizeItem(id="a", messages=CHAT))
    gen = pb.GenerateRequest(prompts=[pb.PromptInput(id="a", messages=CHAT, sample_seeds=[1])],
                             sampling=pb.SamplingParams(temperature=0, max_tokens=1))
    [res] = list(tiny_worker.stub.Generate(gen, timeout=60))
    assert list(tok.prompt_token_ids) == list(res.prompt_token_ids)


def test_append_eos_and_raw_text(tiny_worker: RunningWorker, tokenizer) -> None:
    plain, ended = tokenize(tiny_worker, pb.TokenizeItem(id="p", text="Seven", completion=" eight"),
                            pb.TokenizeItem(id="e", text="Seven", completion=" eight", append_eos=True))
    assert list(plain.prompt_token_ids) == tokenizer("Seven")["input_ids"]
    assert list(ended.completion_token_ids) == list(plain.completion_token_ids) + [tokenizer.eos_token_id]
    [only_eos] = tokenize(tiny_worker, pb.TokenizeItem(id="x", text="Seven", append_eos=True))
    assert list(only_eos.completion_token_ids) == [tokenizer.eos_token_id]


def test_template_kwargs_must_be_a_json_object(tiny_worker: RunningWorker) -> None:
    # A kwarg the template does not use is accepted (Jinja ignores it), as in Generate.
    [ok] = tokenize(tiny_worker, pb.TokenizeItem(id="a", messages=CHAT), kwargs='{"enable_thinking": false}')
    assert len(ok.prompt_token_ids) > 0
    for bad in ("[1, 2]", "{not json", '{"tokenize": false}'):
        with pytest.raises(grpc.RpcError) as err:
            tokenize(tiny_worker, pb.TokenizeItem(id="a", messages=CHAT), kwargs=bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "chat_template_kwargs_json" in err.value.details()


def test_item_without_prompt_is_rejected(tiny_worker: RunningWorker) -> None:
    with pytest.raises(grpc.RpcError) as err:
        tokenize(tiny_worker, pb.TokenizeItem(id="empty", completion="x"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'empty'" in err.value.details()


def test_prompt_opens_think(tiny_worker: RunningWorker) -> None:
    opened, closed = tokenize(tiny_worker, pb.TokenizeItem(id="o", text="Solve it.\n<think>\n"),
                              pb.TokenizeItem(id="c", text="Solve it.\n<think>\nhmm</think>\n"))
    assert opened.prompt_opens_think and not closed.prompt_opens_think


def test_embed_shape_norm_and_determinism(tiny_worker: RunningWorker) -> None:
    texts = ["Pythagorean theorem", "modular arithmetic", "Pythagorean theorem", "a much longer text about " * 5]
    first = embed(tiny_worker, texts)
    assert len(first) == 4 and {len(v) for v in first} == {64}  # the tiny model's hidden size
    for v in first:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5)
    assert embed(tiny_worker, texts) == first
    assert first[0] == pytest.approx(first[2], abs=1e-6)
    cos = sum(a * b for a, b in zip(first[0], first[1]))
    assert cos < 0.999, "different texts must embed differently"


def test_embed_ignores_padding(tiny_worker: RunningWorker) -> None:
    """A short text batched with a long one (right-padded) embeds as it does alone."""
    [alone] = embed(tiny_worker, ["prime numbers"])
    together = embed(tiny_worker, ["prime numbers", "the sum of the interior angles of a polygon " * 4])
    assert together[0] == pytest.approx(alone, abs=1e-5)


def test_embed_rejects_empty_text(tiny_worker: RunningWorker) -> None:
    with pytest.raises(grpc.RpcError) as err:
        embed(tiny_worker, ["fine", ""])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "texts[1]" in err.value.details()
