"""Sharded trainer ranks: one process per rank, FSDP2 (``fully_shard``) over the transformer blocks.

The controller sends every call to every rank (SPMD) and takes rank 0's answer, so each rank runs the same
sequence of forwards and backwards and the collectives line up. A train step is data parallel: every rank
splits the *same* global micro batches, rank r taking examples r, r+N, ... of each, so all ranks run the same
number of forward/backward passes whatever the token caps do. Each rank's loss is divided by the global
normalizer (examples or tokens of the whole batch), and gradients are *summed* across ranks (FSDP's mean
times the world size), so the step equals the single-rank step up to the order of floating-point additions.

Parameters stay fp32 (they are the masters); bf16 is FSDP's compute dtype (MixedPrecisionPolicy), which casts
the fp32 shards exactly as the single-rank worker rounds its masters into its bf16 parameters.

Checkpoints have the single-rank layout: rank 0 gathers the full state and writes model.safetensors (in the
compute dtype), master_fp32.pt (bf16 only) and optimizer.pt numbered as the single-rank optimizer numbers its
parameters, so either kind of trainer loads the other's checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions, get_model_state_dict, get_optimizer_state_dict, set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from . import checkpoint
from .backend_transformers import TransformersBackend, _normalizer, _rows_of
from .batch import micro_batches
from .memory import transformer_blocks
from .models import LoadedModel
from .precision import MasterWeights
from .schema import Example, Hyper, LossKind

log = logging.getLogger("promptcot_worker.sharded")

COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int


def rank_from_env() -> Rank | None:
    """RANK/WORLD_SIZE as the launcher (or torchrun) sets them; None for a plain single worker."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    rank = int(os.environ.get("RANK", "-1"))
    if not 0 <= rank < world:
        raise ValueError(f"RANK={os.environ.get('RANK')!r} must be in [0, WORLD_SIZE={world})")
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(key):
            raise ValueError(f"WORLD_SIZE={world} needs {key} in the environment (the rendezvous address)")
    return Rank(rank, world)


def init_group(me: Rank, device: torch.device) -> None:
    """gloo on CPU, nccl on CUDA; blocks until every rank has joined."""
    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=me.rank, world_size=me.world, timeout=COLLECTIVE_TIMEOUT)
    log.info("rank %d/%d joined the %s group at %s:%s", me.rank, me.world, backend,
             os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"])


def backend_for_rank(args: Any, loaded: LoadedModel, device: torch.device,
                     dtype: torch.dtype) -> "ShardedBackend | None":
    """The server's backend when the environment names a rank of a group (WORLD_SIZE > 1), else None."""
    me = rank_from_env()
    if me is None:
        return None
    if args.role != "trainer":
        raise ValueError(f"WORLD_SIZE={me.world} is for trainer ranks; a --role {args.role} worker runs alone")
    init_group(me, device)
    return ShardedBackend(loaded, device, args.model, me, dtype, args.trainable_layers, args.decode_width,
                          args.gradient_checkpointing)


class ShardedBackend(TransformersBackend):
    """A TransformersBackend whose model is sharded over the ranks of the default process group."""

    def __init__(self, loaded: LoadedModel, device: torch.device, source: str, me: Rank,
                 compute_dtype: torch.dtype, trainable_layers: int = 0, decode_width: int = 8,
                 gradient_checkpointing: bool = True) -> None:
        loaded.model.to(torch.float32)
        # The chunked head calls the blocks and lm_head outside the root module's forward, where FSDP would
        # not gather the root's shards; the full-logits path (logits only at completion positions) is used.
        super().__init__(loaded, device, source, trainable_layers, decode_width, logprob_chunk_tokens=0,
                         gradient_checkpointing=gradient_checkpointing, fp32_master=False)
        self.me = me
        self.compute_dtype = compute_dtype
        mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
        for block in transformer_blocks(self.model):
            fully_shard(block, mp_policy=mp)
        fully_shard(self.model, mp_policy=mp)

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["num_parameters"] = _global_numel(self.model.parameters())
        out["trainable_parameters"] = _global_numel(p for p in self.model.parameters() if p.requires_grad)
        out["dtype"] = str(self.compute_dtype).removeprefix("torch.")
        return out

    # ---- no-grad calls -----------------------------------------------------------------------------
    # FSDP reuses its gathered-parameter buffers across calls; filled under inference_mode they become
    # inference tensors that the next training step may not write, so these run under no_grad instead.

    def score(self, items: Any, want_tokens: bool, temperature: float = 1.0) -> Any:
        with torch.no_grad(), self._resharded():
            return TransformersBackend.score.__wrapped__(self, items, want_tokens, temperature)

    def _prefill(self, prompt_ids: list[int]) -> Any:
        with torch.no_grad(), self._resharded():
            return TransformersBackend._prefill.__wrapped__(self, prompt_ids)

    def _step(self, cache: Any, tokens: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self._resharded():
            return TransformersBackend._step.__wrapped__(self, cache, tokens)

    @contextlib.contextmanager
    def _resharded(self) -> Iterator[None]:
        try:
            yield
        finally:
            self._reshard()

    def _reshard(self) -> None:
        """FSDP leaves the root module's parameters gathered after a forward (a backward would need them at
        once), and while gathered, the module's registered parameters are the full tensors, not the sharded
        ones. After a no-grad forward nothing reshards them, so the optimizer (built from
        named_parameters()) and the next backward would see the wrong tensors. Every no-grad call reshards."""
        for module in self.model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    # ---- training ----------------------------------------------------------------------------------

    def _accumulate(self, kind: LossKind, examples: list[Example], hyper: Hyper,
                    masters: MasterWeights) -> dict[str, Any]:
        normalizer = _normalizer(kind, examples, hyper)
        stats = _scratch()
        for micro in micro_batches(_rows_of(kind, examples), hyper.micro_batch_size, hyper.max_tokens_per_micro_batch):
            mine = micro[self.me.rank :: self.me.world]
            if mine:
                loss = self._micro_loss(kind, [examples[i] for i in mine], hyper, normalizer, stats)
                stats["loss"] += float(loss.detach())
            else:  # fewer examples than ranks: a zero-weighted pass keeps this rank in the collectives
                loss = self._micro_loss(kind, [examples[micro[0]]], hyper, normalizer, _scratch()) * 0.0
            # Each rank's loss already has the global denominator, so the ranks' gradients must be summed;
            # FSDP averages them (gloo has no pre-multiplied sum), hence the factor world (exact for 2^k ranks).
            (loss * float(self.me.world)).backward()
            stats["micro_batches"] += 1
        return _gather_stats(stats)

    def _clip_grads(self, params: list[torch.Tensor], limit: float) -> float:
        norm = torch.nn.utils.clip_grad_norm_(params, limit)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    # ---- checkpoints -------------------------------------------------------------------------------

    def save_checkpoint(self, path: Path, include_optimizer: bool) -> int:
        if path.exists():  # checked on every rank before the gathers, so all ranks fail alike
            raise FileExistsError(f"checkpoint path already exists: {path}")
        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        full = get_model_state_dict(self.model, options=opts)
        optim = None
        if include_optimizer and self.optimizer is not None:
            optim = get_optimizer_state_dict(self.model, self.optimizer, options=opts)
        size = 0
        if self.me.rank == 0:
            size = self._write(path, full, optim)
        dist.barrier()
        return size

    def _write(self, path: Path, full: dict[str, torch.Tensor], optim: dict[str, Any] | None) -> int:
        meta = {
            "weights_version": self.weights_version, "trainable_layers": self.trainable_layers,
            "model_source": self.source, "model_name": self.name,
            "last_step_id": self.last_step[0] if self.last_step else "", "has_optimizer": optim is not None,
            "written_by_ranks": self.me.world,
        }
        # Tied names (lm_head.weight = the embeddings) are written once, under the name the parameter has.
        own = {n for n, _ in self.model.named_parameters()} | {n for n, _ in self.model.named_buffers()}
        weights = {k: v.to(self.compute_dtype) for k, v in full.items() if k in own}
        masters = None
        if self.compute_dtype != torch.float32:
            masters = {n: full[n] for n, p in self.model.named_parameters() if p.requires_grad}
        opt_sd = _indexed_optimizer_state(optim) if optim is not None else None
        self.model.config.dtype = self.compute_dtype
        return checkpoint.save(path, self.model, self.tokenizer, opt_sd, meta, masters, state_dict=weights)

    def load_checkpoint(self, path: Path, load_optimizer: bool) -> int:
        meta = checkpoint.meta_for_load(path, self.trainable_layers, load_optimizer)
        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.model, self._full_weights(path), options=opts)
        if load_optimizer:
            self.optimizer = None
            optimizer = self._optimizer_for(Hyper(learning_rate=0.0))
            saved = torch.load(path / checkpoint.OPTIMIZER_FILE, map_location="cpu", weights_only=True)
            set_optimizer_state_dict(self.model, optimizer, _named_optimizer_state(saved, optimizer, self),
                                     options=opts)
        checkpoint.load_rng(path)
        self.last_step = None
        self.weights_version = int(meta.get("weights_version", self.weights_version + 1))
        return self.weights_version

    def _full_weights(self, path: Path) -> dict[str, torch.Tensor]:
        """fp32 weights: the checkpoint's masters where it has them, else its safetensors upcast."""
        state = checkpoint.read_safetensors(path)
        state.update(checkpoint.load_masters(path) or {})
        live = {n: p for n, p in self.model.named_parameters()}
        live_keys = set(self.model.state_dict())
        unknown = sorted(set(state) - live_keys)
        if unknown:
            raise ValueError(f"checkpoint {path} has tensors the model lacks: {unknown[:5]}")
        missing = sorted(set(live) - set(state))
        if missing:
            raise ValueError(f"checkpoint {path} lacks tensors: {missing[:5]}")
        # Tied names (lm_head.weight = embeddings) are one parameter here; keep only the names it answers to.
        return {k: v.float() for k, v in state.items() if k in live}


def _scratch() -> dict[str, Any]:
    return {"loss": 0.0, "tokens": 0, "chosen": [], "rejected": [], "clip": [], "dual_clip": [], "kl": [], "micro_batches": 0}


def _gather_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Every rank's partial metrics, combined: sums for loss and tokens, concatenation for per-example lists.
    clip/kl are per micro batch on each rank; their mean over all ranks' micro batches is reported."""
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, stats)
    out = dict(stats)
    out["loss"] = sum(p["loss"] for p in parts)
    out["tokens"] = sum(p["tokens"] for p in parts)
    for key in ("chosen", "rejected", "clip", "dual_clip", "kl", "router_aux"):
        out[key] = [v for p in parts for v in p.get(key, [])]
    return out


def _global_numel(params: Any) -> int:
    return sum(int(torch.Size(p.shape).numel()) for p in params)  # a DTensor's shape is the global one


def _indexed_optimizer_state(named: dict[str, Any]) -> dict[str, Any]:
    """torch's FQN-keyed full optimizer state → the single-rank optimizer.state_dict() layout (parameters
    numbered in param-group order)."""
    ids: dict[str, int] = {}
    groups = []
    for g in named["param_groups"]:
        params = []
        for fqn in g["params"]:
            ids[fqn] = len(ids)
            params.append(ids[fqn])
        groups.append({**g, "params": params})
    return {"state": {ids[k]: v for k, v in named["state"].items()}, "param_groups": groups}


def _named_optimizer_state(saved: dict[str, Any], optimizer: torch.optim.Optimizer,
                           backend: ShardedBackend) -> dict[str, Any]:
    """The single-rank layout back to FQNs, through the live optimizer's groups (built as the single-rank
    worker builds them, so position i is the same parameter in both)."""
    name_of = {id(p): n for n, p in backend.model.named_parameters()}
    fqns = [name_of[id(p)] for g in optimizer.param_groups for p in g["params"]]
    sizes = [len(g["params"]) for g in saved["param_groups"]]
    live_sizes = [len(g["params"]) for g in optimizer.param_groups]
    if sizes != live_sizes:
        raise ValueError(f"optimizer state has param groups of sizes {sizes}, this trainer has {live_sizes} "
                         "(same model and --trainable-layers?); load without the optimizer to start fresh")
    groups = [{**g, "params": [fqns[i] for i in g["params"]]} for g in saved["param_groups"]]
    return {"state": {fqns[i]: v for i, v in saved["state"].items()}, "param_groups": groups}
