"""Stop strings: the trailing-window matcher, and token_ids that decode to exactly the graded text (+ EOS)."""

from __future__ import annotations

import random

import pytest

from conftest import smollm2_tokenizer
from promptcot_worker.sampling import SampleState, SamplingConfig, advance, first_stop

EOS = 2  # <|im_end|> in the SmolLM2 tokenizer


def cfg(stop: tuple[str, ...], max_tokens: int = 10_000) -> SamplingConfig:
    return SamplingConfig(temperature=1.0, top_p=0.0, top_k=0, max_tokens=max_tokens, stop=stop)


def feed(ids: list[int], stop: tuple[str, ...]) -> tuple[SampleState, int]:
    """Run the sampler's bookkeeping over ``ids``; returns the state and how many tokens it consumed."""
    tok = smollm2_tokenizer()
    state = SampleState(index=0)
    eos_ids = frozenset({EOS})
    for step, token in enumerate(ids, start=1):
        advance(state, token, -1.0, cfg(stop), eos_ids, tok, EOS)
        if state.done:
            return state, step
    return state, len(ids)


def reference_stop_step(ids: list[int], stop: tuple[str, ...]) -> tuple[int, str] | None:
    """The old matcher: decode the whole output at every step."""
    tok = smollm2_tokenizer()
    for step in range(1, len(ids) + 1):
        text = tok.decode(ids[:step], skip_special_tokens=True)
        cut = first_stop(text, stop)
        if cut >= 0:
            return step, text[:cut]
    return None


def test_stop_spanning_two_tokens_keeps_text_and_tokens_equal() -> None:
    tok = smollm2_tokenizer()
    ids = tok.encode("The answer is 42. Done here, friend.", add_special_tokens=False)
    full = tok.decode(ids)

    def straddling(k: int) -> str:
        """The last 2 characters of token k and the first of token k + 1, when that string is new there."""
        end = len(tok.decode(ids[: k + 1]))
        stop = full[end - 2 : end + 1]
        return stop if full.find(stop) == end - 2 and len(tok.decode(ids[k : k + 1])) >= 3 else ""

    k = next(i for i in range(2, len(ids) - 1) if straddling(i))
    stop = straddling(k)
    state, step = feed(ids, (stop,))
    assert state.finish_reason == "stop" and step == k + 2
    assert state.text == full[: full.find(stop)] and stop not in state.text
    assert state.token_ids[-1] == EOS
    assert tok.decode(state.token_ids[:-1]) == state.text  # trained tokens == graded text
    # The part of token k before the stop was re-encoded: it has no decode log-prob yet.
    assert state.unscored == len(state.token_ids) - len(state.logprobs) and state.unscored >= 2


def test_stop_at_a_token_boundary_keeps_the_sampled_tokens() -> None:
    tok = smollm2_tokenizer()
    ids = tok.encode("alpha beta gamma delta", add_special_tokens=False)
    stop = tok.decode(ids[2:3])  # exactly one token's text
    state, _ = feed(ids, (stop,))
    assert state.token_ids == ids[:2] + [EOS] and state.unscored == 1 and len(state.logprobs) == 2
    assert tok.decode(state.token_ids, skip_special_tokens=True) == state.text == tok.decode(ids[:2])


def test_no_stop_no_change() -> None:
    tok = smollm2_tokenizer()
    ids = tok.encode("nothing to see", add_special_tokens=False)
    state = SampleState(index=0)
    for token in ids:
        advance(state, token, None, cfg(("@@",), max_tokens=len(ids)), frozenset({EOS}), tok, EOS)
    assert state.finish_reason == "length" and state.token_ids == ids and state.unscored == 0


@pytest.mark.parametrize("seed", range(6))
def test_trailing_window_finds_the_same_stops_as_full_decode(seed: int) -> None:
    tok = smollm2_tokenizer()
    rng = random.Random(seed)
    alphabet = "ab c\n\n.}{\\é漢😀" if seed % 2 else "xyz 01\n"
    text = "".join(rng.choice(alphabet) for _ in range(300))
    ids = tok.encode(text, add_special_tokens=False)
    if seed == 5:  # random token ids too: orphan UTF-8 bytes, odd merges
        ids = [rng.randrange(3, 49152) for _ in range(150)]
    decoded = tok.decode(ids)
    for _ in range(8):
        start = rng.randrange(len(decoded) - 6)
        stops = (decoded[start : start + rng.randint(1, 5)], "".join(rng.choice(alphabet) for _ in range(2)))
        expected = reference_stop_step(ids, stops)
        state, step = feed(ids, stops)
        if expected is None:
            assert state.finish_reason == ""
            continue
        assert (step, state.text) == expected, stops
        assert tok.decode(state.token_ids[:-1]) == state.text


def test_stop_hit_over_grpc_returns_log_probs_for_every_token(tiny_worker) -> None:
    from promptcot_worker.gen import promptcot_worker_pb2 as pb

    tok = smollm2_tokenizer()

    def gen(stop: list[str]):
        req = pb.GenerateRequest(prompts=[pb.PromptInput(id="s", text="Numbers:", sample_seeds=[9])],
                                 sampling=pb.SamplingParams(temperature=1.0, max_tokens=24, stop=stop),
                                 return_logprobs=True)
        return next(iter(tiny_worker.stub.Generate(req, timeout=120)))

    base = gen([])
    text = base.text
    # A stop starting inside a token, so part of that token is re-encoded.
    offsets = [len(tok.decode(base.token_ids[:i])) for i in range(len(base.token_ids) + 1)]
    start = next(o + 1 for o, nxt in zip(offsets[2:], offsets[3:]) if nxt - o >= 3 and text.find(text[o + 1 : o + 3]) == o + 1)
    cut = gen([text[start : start + 2]])
    assert cut.finish_reason == "stop" and cut.text == text[:start]
    assert tok.decode(cut.token_ids[:-1]) == cut.text and cut.token_ids[-1] == EOS
    assert len(cut.logprobs) == len(cut.token_ids)
    scored = tiny_worker.stub.ScoreLogProbs(pb.ScoreRequest(
        items=[pb.ScoreItem(prompt_token_ids=cut.prompt_token_ids, completion_token_ids=cut.token_ids)],
        return_token_logprobs=True)).results[0]
    assert list(cut.logprobs) == pytest.approx(list(scored.token_logprobs), abs=1e-4)
