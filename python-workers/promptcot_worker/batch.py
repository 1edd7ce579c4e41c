"""Right-padded (prompt, completion) batches and the completion-token logits of one forward pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedModel, modeling_utils


@dataclass
class CompletionBatch:
    input_ids: torch.Tensor  # [B, L] prompt+completion, right-padded
    attention_mask: torch.Tensor  # [B, L]
    positions: torch.Tensor  # [B, C] index of the logit that predicts each completion token
    labels: torch.Tensor  # [B, C] completion tokens (0 where padded)
    mask: torch.Tensor  # [B, C] 1.0 on real completion tokens

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum().item())


def build_batch(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int, device: torch.device
) -> CompletionBatch:
    """Pack (prompt_ids, completion_ids) pairs; every prompt must have at least one token."""
    if any(len(p) == 0 for p, _ in pairs):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) + len(c) for p, c in pairs)
    comp_width = max(1, max(len(c) for _, c in pairs))
    rows = len(pairs)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    attention = torch.zeros((rows, width), dtype=torch.long)
    positions = torch.zeros((rows, comp_width), dtype=torch.long)
    labels = torch.zeros((rows, comp_width), dtype=torch.long)
    mask = torch.zeros((rows, comp_width), dtype=torch.float32)
    for b, (prompt, completion) in enumerate(pairs):
        seq = list(prompt) + list(completion)
        input_ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention[b, : len(seq)] = 1
        n = len(completion)
        if n:
            positions[b, :n] = torch.arange(len(prompt) - 1, len(prompt) - 1 + n)
            labels[b, :n] = torch.tensor(list(completion), dtype=torch.long)
            mask[b, :n] = 1.0
    return CompletionBatch(
        input_ids.to(device), attention.to(device), positions.to(device), labels.to(device), mask.to(device)
    )


# transformers >= 5.2x projects only the requested (row, position) pairs onto the vocabulary.
_PER_ROW_LOGITS_TO_KEEP = hasattr(modeling_utils, "slice_logits_to_keep")


def completion_logits(model: PreTrainedModel, batch: CompletionBatch) -> torch.Tensor:
    """Logits at the completion positions only ([B, C, V])."""
    if not _PER_ROW_LOGITS_TO_KEEP:  # older transformers: build all logits, then pick
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
        return torch.take_along_dim(out.logits, batch.positions[..., None], dim=1)
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        logits_to_keep=batch.positions,
        use_cache=False,
    )
    return out.logits


def chunk_by_budget(lengths: Sequence[int], max_rows: int, max_tokens: int) -> list[list[int]]:
    """Group indices (sorted by length, so padding stays small) into chunks under a padded-token budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in order:
        grown = current + [i]
        if current and (len(grown) > max_rows or len(grown) * lengths[i] > max_tokens):
            chunks.append(current)
            grown = [i]
        current = grown
    if current:
        chunks.append(current)
    return chunks


def micro_batches(rows: Sequence[tuple[int, int]], max_examples: int, max_tokens: int) -> list[list[int]]:
    """Consecutive groups of example indices for gradient accumulation.

    ``rows[i]`` is (padded rows, tokens per row) of example i. A group holds at most ``max_examples``
    examples and, when ``max_tokens`` > 0, at most that many padded tokens (rows x longest row); an
    example over the token cap on its own forms a group of one. 0 means no limit.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    n_rows = width = 0
    for i, (r, length) in enumerate(rows):
        grown_rows, grown_width = n_rows + r, max(width, length)
        full = 0 < max_examples <= len(current)
        over = max_tokens > 0 and grown_rows * grown_width > max_tokens
        if current and (full or over):
            groups.append(current)
            current, grown_rows, grown_width = [], r, length
        current.append(i)
        n_rows, width = grown_rows, grown_width
    if current:
        groups.append(current)
    return groups
