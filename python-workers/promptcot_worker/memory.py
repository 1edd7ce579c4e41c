"""Memory at long context: completion log-probs without the whole [B, T, V] logits, and activation
checkpointing of the transformer blocks while the model stays in eval mode (no dropout).

With a 151,936-token vocabulary one 32k-token row of float32 logits is ~20 GB; here at most
``chunk_tokens`` rows of logits exist at a time, in the forward and (recomputed) in the backward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from .batch import CompletionBatch

DEFAULT_CHUNK_TOKENS = 256


def transformer_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    base = getattr(model, "base_model", model)
    blocks = getattr(base, "layers", None)
    if not isinstance(blocks, torch.nn.ModuleList):
        raise ValueError(f"cannot find transformer blocks on {type(model).__name__}")
    return blocks


def supports_chunked_head(model: torch.nn.Module) -> bool:
    """The chunked path computes logits as lm_head(hidden); models that post-process them are excluded."""
    cfg = model.config
    post = [getattr(cfg, k, None) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling")]
    return model.get_output_embeddings() is not None and all(v in (None, 0, 1, 1.0) for v in post)


def checkpoint_blocks(model: torch.nn.Module) -> None:
    """Recompute each block's activations in the backward pass instead of keeping them.

    HF's gradient_checkpointing_enable() only acts when ``module.training`` is set, which would also turn
    on dropout; the worker keeps eval mode for deterministic steps, so it wraps the blocks itself.
    Without gradients (scoring, generation) the blocks run as they are.
    """
    for block in transformer_blocks(model):
        if getattr(block, "_promptcot_checkpointed", False):
            continue
        inner = block.forward

        def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = forward
        block._promptcot_checkpointed = True


def blocks_checkpointed(model: torch.nn.Module) -> bool:
    """Whether checkpoint_blocks wrapped this model's blocks (what Info reports as checkpoints_blocks)."""
    return all(getattr(b, "_promptcot_checkpointed", False) for b in transformer_blocks(model))


def _head_logprobs(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = head(hidden).float()
    if temperature != 1.0:  # as losses.token_logprobs divides: the same values at any temperature
        logits = logits / temperature
    picked = torch.gather(logits, -1, labels[:, None]).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def chunked_token_logprobs(model: Any, batch: CompletionBatch, chunk_tokens: int,
                           temperature: float = 1.0) -> torch.Tensor:
    """log p(label) under softmax(logits / temperature) at every completion position, float32 [B, C] (0 on
    padding), same values as losses.token_logprobs(completion_logits(...), labels, temperature). Under
    autograd each chunk is checkpointed, so its logits are rebuilt in the backward pass rather than kept."""
    out = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    rows, cols = batch.mask.nonzero(as_tuple=True)
    hidden = out.last_hidden_state[rows, batch.positions[rows, cols]]  # [N, H]
    labels = batch.labels[rows, cols]
    head = model.get_output_embeddings()
    pieces = []
    for lo in range(0, hidden.shape[0], chunk_tokens):
        h, y = hidden[lo : lo + chunk_tokens], labels[lo : lo + chunk_tokens]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_head_logprobs, head, h, y, temperature, use_reentrant=False))
        else:
            pieces.append(_head_logprobs(head, h, y, temperature))
    values = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    full = torch.zeros(batch.labels.shape, dtype=torch.float32, device=values.device)
    return full.index_put((rows, cols), values)
