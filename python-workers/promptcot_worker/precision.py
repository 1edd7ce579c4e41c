"""Mixed precision for training: bf16 weights for compute, fp32 master weights and optimizer state.

The model's parameters stay bf16, so every forward (the trainer's and a rollout worker's that loaded
the same checkpoint) uses the same bf16 weights. AdamW updates fp32 copies of the trainable parameters
(the masters); after each step they are rounded into the bf16 parameters. bf16 resolves only ~0.4% of
a value, so an update of lr 1e-5 on a weight of 0.02 is lost when applied to bf16 directly, but it
accumulates in the master until it moves the rounded weight.
"""

from __future__ import annotations

import torch


class MasterWeights:
    """Pairs each trainable parameter with the fp32 tensor the optimizer updates.

    For float32 parameters (or ``keep_fp32=False``, the old pure-bf16 behaviour kept for comparison)
    the master *is* the parameter and every method is a no-op.
    """

    def __init__(self, named: list[tuple[str, torch.nn.Parameter]], keep_fp32: bool = True) -> None:
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.masters = [
            p.detach().float().clone().requires_grad_(True) if keep_fp32 and p.dtype != torch.float32 else p
            for p in self.params
        ]

    @property
    def separate(self) -> bool:
        return any(m is not p for m, p in zip(self.masters, self.params))

    def take_grads(self) -> None:
        """Move the bf16 gradients into fp32 master gradients (called after each micro batch, so
        gradient accumulation sums in fp32)."""
        for master, param in zip(self.masters, self.params):
            if master is param or param.grad is None:
                continue
            grad = param.grad.float()
            master.grad = grad if master.grad is None else master.grad.add_(grad)
            param.grad = None

    @torch.no_grad()
    def push(self) -> None:
        """Round the masters into the model's parameters."""
        for master, param in zip(self.masters, self.params):
            if master is not param:
                param.copy_(master)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: m.detach() for n, m, p in zip(self.names, self.masters, self.params) if m is not p}

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor] | None) -> None:
        """Masters from a checkpoint's fp32 copies, else from the (just loaded) parameters."""
        state = state or {}
        for name, master, param in zip(self.names, self.masters, self.params):
            if master is param:
                continue
            saved = state.get(name)
            if saved is not None and saved.shape != master.shape:
                raise ValueError(f"master weight {name}: shape {tuple(saved.shape)} vs {tuple(master.shape)}")
            master.copy_(saved if saved is not None else param)
