"""Frozen reference weights for scoring: GRPO's KL reference (ScoreRequest.reference).

The policy the trainer holds moves every step; a KL penalty must anchor it to weights that do not. The
reference is a second copy of the model, loaded on the first request that names it and kept (frozen, no
gradients, no optimizer) for the next: "base" is the worker's --model source as loaded at start, anything
else a checkpoint directory of the same model. It costs one more copy of the weights in the trainer's
memory (verl places its reference model the same way unless the policy is a LoRA over the base).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from . import checkpoint
from .backend_transformers import TransformersBackend
from .models import load_source

log = logging.getLogger("promptcot_worker.reference")

BASE = "base"


class References:
    """At most one frozen copy at a time, keyed by its name; another name replaces it."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.held: tuple[str, TransformersBackend] | None = None

    def get(self, name: str, device: torch.device) -> TransformersBackend:
        if self.held is not None and self.held[0] == name:
            return self.held[1]
        self.held = None  # free the old copy before loading another
        backend = self._load(name, device)
        self.held = (name, backend)
        return backend

    def _load(self, name: str, device: torch.device) -> TransformersBackend:
        if name != BASE:
            checkpoint.meta_for_load(Path(name), self.args.trainable_layers, load_optimizer=False)
        # Loading a random test model draws from torch's global generator; the policy's run must not see it.
        with torch.random.fork_rng(devices=[]):
            loaded = load_source(self.args.model, self.args.seed, getattr(torch, self.args.dtype))
        backend = TransformersBackend(loaded, device, self.args.model, decode_width=self.args.decode_width,
                                      gradient_checkpointing=False)
        backend.model.requires_grad_(False)
        if name != BASE:
            checkpoint.load_weights(Path(name), backend.model)
        log.info("reference %s loaded (%s on %s, frozen)", name, self.args.model, device)
        return backend
