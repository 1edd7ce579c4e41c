"""Tokenize and Embed: text operations on the worker's own tokenizer and model (no sampling, no training).

The controller tokenizes through the worker so that SFT targets and scored completions use exactly the
token ids (and chat template) the model will see at generation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .batch import chunk_by_budget

# Padded tokens per embedding forward; hidden states are [rows, length, hidden], far smaller than logits.
EMBED_TOKEN_BUDGET = 8192
EMBED_MAX_ROWS = 64


def chat_prompt_ids(tokenizer: Any, name: str, messages: Sequence[tuple[str, str]],
                    template_kwargs: dict[str, Any] | None = None) -> list[int]:
    """A conversation through the model's chat template, ending with the assistant's generation prompt: the
    prompt ids every Generate, Tokenize and `run --dry-run` (render_prompt.py) starts from."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"model {name} has no chat template; send text or token_ids")
    chat = [{"role": r, "content": c} for r, c in messages]
    out = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, **(template_kwargs or {}))
    # transformers 5 returns a BatchEncoding here; older versions a plain list.
    ids = out["input_ids"] if not isinstance(out, list) else out
    return [int(t) for t in ids]


@dataclass
class TokenizeIn:
    id: str
    messages: list[tuple[str, str]]
    text: str
    completion: str
    append_eos: bool


@dataclass
class Tokenized:
    id: str
    prompt_token_ids: list[int]
    completion_token_ids: list[int]
    prompt_opens_think: bool


def eos_id_of(backend: Any) -> int:
    eos = backend.tokenizer.eos_token_id
    if isinstance(eos, int):
        return eos
    if backend.eos_ids:
        return min(backend.eos_ids)
    raise ValueError(f"model {backend.name} has no EOS token, so append_eos cannot be honoured")


def tokenize(backend: Any, items: Sequence[TokenizeIn], template_kwargs: dict[str, Any]) -> list[Tokenized]:
    """Prompt ids exactly as Generate encodes them (same chat template path and kwargs), then the completion."""
    out = []
    for item in items:
        if not item.messages and not item.text:
            raise ValueError(f"item {item.id!r} has neither messages nor text")
        try:
            prompt_ids = backend.encode_prompt(item.messages, item.text, [], template_kwargs)
        except ValueError as err:
            raise ValueError(f"item {item.id!r}: {err}") from None
        completion = [int(t) for t in backend.tokenizer(item.completion, add_special_tokens=False)["input_ids"]] \
            if item.completion else []
        if item.append_eos:
            completion.append(eos_id_of(backend))
        out.append(Tokenized(item.id, prompt_ids, completion, backend.prompt_opens_think(prompt_ids)))
    return out


def _text_ids(backend: Any, texts: Sequence[str]) -> list[list[int]]:
    ids = [[int(t) for t in backend.tokenizer(t)["input_ids"]] for t in texts]
    for i, seq in enumerate(ids):
        if not seq:
            raise ValueError(f"texts[{i}] is empty (no tokens); embed non-empty texts only")
        if len(seq) > backend.max_positions:
            raise ValueError(f"texts[{i}] has {len(seq)} tokens, over the model's {backend.max_positions} positions")
    return ids


@torch.inference_mode()
def _embed_chunk(backend: Any, rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), backend.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, seq in enumerate(rows):
        input_ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[b, : len(seq)] = 1
    # The base model (no LM head) returns the last hidden state after the final norm, without vocab logits.
    base = getattr(backend.model, "base_model", backend.model)
    hidden = base(input_ids=input_ids.to(backend.device), attention_mask=mask.to(backend.device),
                  use_cache=False).last_hidden_state.float()
    weights = mask.to(hidden.device, torch.float32)[..., None]
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
    return torch.nn.functional.normalize(pooled, dim=-1).cpu()


def embed(backend: Any, texts: Sequence[str]) -> list[list[float]]:
    """Mean-pooled (over real tokens), L2-normalised last hidden state per text, in request order."""
    ids = _text_ids(backend, texts)
    out: list[list[float] | None] = [None] * len(ids)
    for chunk in chunk_by_budget([len(s) for s in ids], EMBED_MAX_ROWS, EMBED_TOKEN_BUDGET):
        vectors = _embed_chunk(backend, [ids[i] for i in chunk])
        for row, idx in enumerate(chunk):
            out[idx] = vectors[row].tolist()
    return [v for v in out if v is not None]
