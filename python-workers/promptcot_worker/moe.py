"""The router's load-balancing loss of mixture-of-experts models (Mixtral, Qwen2-MoE, Qwen3-MoE, ...).

transformers adds ``router_aux_loss_coef * aux_loss`` to its own loss only when it is given labels; the
worker computes its losses itself, so it asks the base model for the router logits on every forward that
builds a graph and adds the same term to each micro batch's loss (weighted by the micro batch's share of
the examples, so gradient accumulation and sharded ranks add up to one full-batch term). Without this the
router of a trained MoE collapses onto a few experts.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import torch


class RouterAux:
    """Hooks on the base model: inject output_router_logits=True when gradients are on, keep the loss."""

    def __init__(self, base: torch.nn.Module, coef: float, n_experts: int, top_k: int,
                 loss_fn: Callable[..., torch.Tensor]) -> None:
        self.coef, self.n_experts, self.top_k, self.loss_fn = coef, n_experts, top_k, loss_fn
        self.last: torch.Tensor | None = None
        base.register_forward_pre_hook(self._before, with_kwargs=True)
        base.register_forward_hook(self._after, with_kwargs=True)

    @classmethod
    def attach(cls, model: torch.nn.Module) -> "RouterAux | None":
        """None for dense models (no router, or a zero coefficient)."""
        cfg = model.config
        coef = float(getattr(cfg, "router_aux_loss_coef", 0.0) or 0.0)
        n_experts = getattr(cfg, "num_experts", None) or getattr(cfg, "num_local_experts", None)
        loss_fn = getattr(sys.modules[type(model).__module__], "load_balancing_loss_func", None)
        if coef <= 0 or not n_experts or loss_fn is None:
            return None
        top_k = int(getattr(cfg, "num_experts_per_tok", 2))
        return cls(getattr(model, "base_model", model), coef, int(n_experts), top_k, loss_fn)

    def _before(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        self.last = None
        if not torch.is_grad_enabled():
            return None
        return args, {**kwargs, "output_router_logits": True}

    def _after(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        logits = getattr(output, "router_logits", None)
        if torch.is_grad_enabled() and logits:
            self.last = self.loss_fn(logits, self.n_experts, self.top_k, kwargs.get("attention_mask"))

    def take(self) -> torch.Tensor | None:
        """coef * the load-balancing loss of the last forward (once), None if it had no router logits."""
        value, self.last = self.last, None
        return None if value is None else self.coef * value
