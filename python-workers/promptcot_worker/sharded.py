"""Sharded trainer ranks: one process per rank, FSDP2 (``fully_shard``) over the transformer blocks.

Start-up: the model is built on the meta device, sharded, and each rank allocates and reads only its rows of
every parameter (from the HF directory's safetensors, one slice at a time), so no rank holds the whole model.
Parameters stay fp32 (they are the masters, sharded like the weights, and AdamW's state is built over them);
bf16 is FSDP's compute dtype (MixedPrecisionPolicy), which casts the fp32 shards exactly as the single-rank
worker rounds its masters into its bf16 parameters.

The controller sends every call to every rank (SPMD) and takes rank 0's answer. A train step is data
parallel: the batch is split across ranks first (split_batch), then each rank micro-batches its share by the
per-rank caps; ranks agree on the number of forward/backward passes (FSDP's collectives pair up per pass) and
pad with zero-weighted passes. Each rank's loss is divided by the global normalizer (examples or tokens of
the whole batch), and gradients are *summed* across ranks (FSDP's mean times the world size), so the step
equals the single-rank step up to the order of floating-point additions.

Log-probs go through the chunked head (at most DEFAULT_CHUNK_TOKENS rows of logits at a time, any
temperature), run inside the FSDP root's forward (_Root) so its parameters (embeddings, lm_head) are gathered.

Checkpoints: torch.distributed.checkpoint (DCP) shards of the fp32 weights and the optimizer, one set of files
per rank, loadable by any number of ranks (or by a single-rank trainer); plus an HF-layout copy in the compute
dtype written by the ranks together (each rank its share of whole tensors) for engines and `promptcot export`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torch.distributed.tensor import DTensor, Shard
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from . import checkpoint
from .backend_transformers import TransformersBackend, _normalizer, _rows_of, freeze_all_but_last
from .batch import micro_batches
from .hf_layout import INDEX_FILE, HfReader, hf_pieces
from .memory import transformer_blocks
from .models import SMOLLM2, TINY_CONFIGS, LoadedModel, smollm2_dir, tiny_model
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


def backend_for_rank(args: Any, device: torch.device, dtype: torch.dtype) -> "ShardedBackend | None":
    """The server's backend when the environment names a rank of a group (WORLD_SIZE > 1), else None."""
    me = rank_from_env()
    if me is None:
        return None
    if args.role != "trainer":
        raise ValueError(f"WORLD_SIZE={me.world} is for trainer ranks; a --role {args.role} worker runs alone")
    init_group(me, device)
    return ShardedBackend.start(args.model, args.seed, device, me, dtype, args.trainable_layers,
                                args.decode_width, args.gradient_checkpointing)


class _Root(torch.nn.Module):
    """The FSDP root: owns the parameters outside the blocks (embeddings, final norm, lm_head) and runs any
    function of the model inside its forward, where FSDP has gathered them. The chunked log-prob head calls
    the base model and lm_head separately, which would otherwise see the root's parameters still sharded."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(self.lm, *args, **kwargs)


class ShardedBackend(TransformersBackend):
    """A TransformersBackend whose model is sharded over the ranks of the default process group."""

    @classmethod
    def start(cls, source: str, seed: int, device: torch.device, me: Rank, compute_dtype: torch.dtype,
              trainable_layers: int = 0, decode_width: int = 8,
              gradient_checkpointing: bool = True) -> "ShardedBackend":
        """The model built on the meta device, sharded, then only this rank's rows read from the source."""
        skeleton, weights = meta_model(source, seed)
        return cls(skeleton, weights, device, source, me, compute_dtype, trainable_layers, decode_width,
                   gradient_checkpointing)

    def __init__(self, skeleton: LoadedModel, weights: "WeightRows", device: torch.device, source: str, me: Rank,
                 compute_dtype: torch.dtype, trainable_layers: int = 0, decode_width: int = 8,
                 gradient_checkpointing: bool = True) -> None:
        self.me = me
        self.compute_dtype = compute_dtype
        model = skeleton.model
        freeze_all_but_last(model, trainable_layers)  # before fully_shard, which records requires_grad
        mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
        for block in transformer_blocks(model):
            fully_shard(block, mp_policy=mp)
        embed = model.get_input_embeddings()
        if embed.weight is not model.get_output_embeddings().weight:
            # Its own unit (called once per forward), so the root's gathered set is lm_head and the final
            # norm only. Tied embeddings stay in the root with the head they share a tensor with.
            fully_shard(embed, mp_policy=mp)
        self._root = _Root(model)
        fully_shard(self._root, mp_policy=mp)
        materialise(model, weights, device)
        # fp32 parameters are the masters (only this rank's rows of them); bf16 is FSDP's compute dtype.
        super().__init__(skeleton, device, source, trainable_layers, decode_width,
                         gradient_checkpointing=gradient_checkpointing, fp32_master=False)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._root(fn, *args, **kwargs)

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
        for module in self._root.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    # ---- training ----------------------------------------------------------------------------------

    def _accumulate(self, kind: LossKind, examples: list[Example], hyper: Hyper,
                    masters: MasterWeights) -> dict[str, Any]:
        """Data parallel: this rank's share of the batch (split_batch), micro-batched by the per-rank caps.
        Every rank must run as many forward/backward passes as the others (each pass's FSDP collectives pair
        up across ranks), so the ranks agree on the largest count and a rank with fewer pads with zero-weighted
        passes over one of its examples (any example when it has none)."""
        normalizer = _normalizer(kind, examples, hyper)
        rows = _rows_of(kind, examples, hyper)
        mine = split_batch(rows, self.me.rank, self.me.world)
        micros = [[mine[i] for i in m] for m in
                  micro_batches([rows[i] for i in mine], hyper.micro_batch_size, hyper.max_tokens_per_micro_batch)]
        passes = torch.tensor([len(micros)], dtype=torch.int64)
        dist.all_reduce(passes, op=dist.ReduceOp.MAX)
        stats = _scratch()
        for k in range(int(passes)):
            # A micro batch is one or more forward/backward passes (a split DPO pair: three forwards, two backwards),
            # the same number for every micro batch of a step, so a filler matches a real one pass for pass.
            real = k < len(micros)
            micro = [examples[i] for i in micros[k]] if real else [examples[mine[0] if mine else 0]]
            # Each rank's loss already has the global denominator, so the ranks' gradients must be summed;
            # FSDP averages them (gloo has no pre-multiplied sum), hence the factor world (exact for 2^k ranks).
            scale = float(self.me.world) if real else 0.0
            for loss, reported in self._micro_passes(kind, micro, hyper, normalizer, stats if real else _scratch()):
                (loss * scale).backward()
                stats["loss"] += reported if real else 0.0
            stats["micro_batches"] += int(real)
        return _gather_stats(stats)

    def _no_grad(self) -> Any:
        """A no-grad forward inside a step (split DPO's first pass) reshards afterwards, as score() does."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(self._resharded())
        return stack

    def _clip_grads(self, params: list[torch.Tensor], limit: float) -> float:
        norm = torch.nn.utils.clip_grad_norm_(params, limit)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    # ---- checkpoints -------------------------------------------------------------------------------

    def save_checkpoint(self, path: Path, include_optimizer: bool) -> int:
        """Every rank writes its own shards (torch.distributed.checkpoint) of the fp32 weights (the masters)
        and the optimizer, plus its share of an HF-layout copy in the compute dtype (whole tensors, split
        over the ranks by size) for engines and `promptcot export`; rank 0 adds config, tokenizer and
        worker_meta.json, then renames the temp dir into place, so a crash never leaves a half-written path."""
        if path.exists():  # checked on every rank before any collective, so all ranks fail alike
            raise FileExistsError(f"checkpoint path already exists: {path}")
        tmp = self._agreed_tmp(path)
        try:
            state: dict[str, Any] = {"model": self._param_state()}
            with_optim = include_optimizer and self.optimizer is not None
            if with_optim:
                state["optim"] = get_optimizer_state_dict(self.model, self.optimizer)
            dcp.save(state, checkpoint_id=str(tmp / checkpoint.DCP_DIR))
            names = write_hf_shard(self.model, tmp, self.me, self.compute_dtype)
            torch.save(checkpoint.rng_state(), tmp / checkpoint.rank_rng_file(self.me.rank))
            parts: list[Any] = [None] * self.me.world
            dist.all_gather_object(parts, names)
            if self.me.rank == 0:
                self._finish(tmp, path, parts, with_optim)
            dist.barrier()
        except BaseException:
            if self.me.rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        return checkpoint.dir_bytes(path)

    def _agreed_tmp(self, path: Path) -> Path:
        """Rank 0's temp dir name (its pid), the same on every rank; created empty before anyone writes."""
        box = [f"{path.name}.tmp-{os.getpid()}"]
        dist.broadcast_object_list(box, src=0)
        tmp = path.parent / box[0]
        if self.me.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist.barrier()
        return tmp

    def _finish(self, tmp: Path, path: Path, parts: list[dict[str, str]], with_optim: bool) -> None:
        weight_map = {k: v for part in parts for k, v in part.items()}
        (tmp / INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": dict(sorted(weight_map.items()))},
                                                 indent=2))
        self.model.config.dtype = self.compute_dtype
        self.model.config.save_pretrained(str(tmp))
        if self.model.generation_config is not None:
            self.model.generation_config.save_pretrained(str(tmp))
        self.tokenizer.save_pretrained(str(tmp))
        meta = {
            "weights_version": self.weights_version, "trainable_layers": self.trainable_layers,
            "model_source": self.source, "model_name": self.name,
            "last_step_id": self.last_step[0] if self.last_step else "", "has_optimizer": with_optim,
            "written_by_ranks": self.me.world, "format": "dcp",
        }
        (tmp / checkpoint.META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        if path.exists():
            raise FileExistsError(f"checkpoint path already exists: {path}")
        os.rename(tmp, path)

    def _param_state(self) -> dict[str, torch.Tensor]:
        return dict(self.model.named_parameters())

    def load_checkpoint(self, path: Path, load_optimizer: bool) -> int:
        meta = checkpoint.meta_for_load(path, self.trainable_layers, load_optimizer)
        if checkpoint.is_dcp(path):
            self._load_dcp(path, load_optimizer)
        else:
            self._load_single_rank_layout(path, load_optimizer)
        checkpoint.load_rng(path, self.me.rank)
        self.last_step = None
        self.weights_version = int(meta.get("weights_version", self.weights_version + 1))
        return self.weights_version

    def _load_dcp(self, path: Path, load_optimizer: bool) -> None:
        """Each rank reads its rows of every tensor, whatever number of ranks wrote them."""
        state: dict[str, Any] = {"model": self._param_state()}
        optimizer = None
        if load_optimizer:
            self.optimizer = None
            optimizer = self._optimizer_for(Hyper(learning_rate=0.0))
            state["optim"] = get_optimizer_state_dict(self.model, optimizer)
        dcp.load(state, checkpoint_id=str(path / checkpoint.DCP_DIR))
        if optimizer is not None:
            set_optimizer_state_dict(self.model, optimizer, state["optim"])

    def _load_single_rank_layout(self, path: Path, load_optimizer: bool) -> None:
        """A single-rank trainer's checkpoint (model.safetensors, master_fp32.pt, optimizer.pt): each rank reads
        its rows of the weights (the fp32 masters where the checkpoint has them); the optimizer file is mapped
        (mmap) and each rank keeps its rows."""
        reader = HfReader(path)
        masters = checkpoint.load_masters(path, mmap=True) or {}
        missing = [n for n, _ in self.model.named_parameters() if n not in masters and not reader.has(n)]
        if missing:
            raise ValueError(f"checkpoint {path} lacks tensors: {missing[:5]}")
        fill_local_rows(self.model, _MastersOver(masters, reader))
        if load_optimizer:
            self.optimizer = None
            optimizer = self._optimizer_for(Hyper(learning_rate=0.0))
            saved = torch.load(path / checkpoint.OPTIMIZER_FILE, map_location="cpu", weights_only=True, mmap=True)
            set_optimizer_state_dict(self.model, optimizer, _named_optimizer_state(saved, optimizer, self),
                                     options=StateDictOptions(full_state_dict=True))

    # ---- the old path, kept for bench/sharded-memory.py -------------------------------------------

    def save_checkpoint_gathered(self, path: Path, include_optimizer: bool) -> int:
        """The single-rank layout through rank 0's memory (full weights, masters and optimizer gathered there):
        what save_checkpoint did before DCP; the bench compares the two."""
        if path.exists():
            raise FileExistsError(f"checkpoint path already exists: {path}")
        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        full = get_model_state_dict(self.model, options=opts)
        optim = None
        if include_optimizer and self.optimizer is not None:
            optim = get_optimizer_state_dict(self.model, self.optimizer, options=opts)
        size = 0
        if self.me.rank == 0:
            meta = {"weights_version": self.weights_version, "trainable_layers": self.trainable_layers,
                    "model_source": self.source, "model_name": self.name, "has_optimizer": optim is not None,
                    "written_by_ranks": self.me.world}
            own = {n for n, _ in self.model.named_parameters()} | {n for n, _ in self.model.named_buffers()}
            weights = {k: v.to(self.compute_dtype) for k, v in full.items() if k in own}
            masters = None
            if self.compute_dtype != torch.float32:
                masters = {n: full[n] for n, p in self.model.named_parameters() if p.requires_grad}
            opt_sd = checkpoint.indexed_optimizer_state(optim) if optim is not None else None
            self.model.config.dtype = self.compute_dtype
            size = checkpoint.save(path, self.model, self.tokenizer, opt_sd, meta, masters, state_dict=weights)
        dist.barrier()
        return size


# ---- start-up: meta model, then each rank's rows --------------------------------------------------------

class WeightRows(Protocol):
    def rows(self, name: str, lo: int, hi: int) -> torch.Tensor: ...


class _InMemory:
    """A tiny random model's weights (a function of the seed over the whole model, so built whole: tests only)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state

    def rows(self, name: str, lo: int, hi: int) -> torch.Tensor:
        return self.state[name][lo:hi]


class _MastersOver:
    """fp32 masters where a checkpoint has them, else its (compute-dtype) safetensors."""

    def __init__(self, masters: dict[str, torch.Tensor], reader: HfReader) -> None:
        self.masters, self.reader = masters, reader

    def rows(self, name: str, lo: int, hi: int) -> torch.Tensor:
        return self.masters[name][lo:hi] if name in self.masters else self.reader.rows(name, lo, hi)


def meta_model(source: str, seed: int) -> tuple[LoadedModel, WeightRows]:
    """The model's skeleton on the meta device (fp32) and where its weights come from: the HF directory's
    safetensors read row range by row range, or (tiny random models) the seeded model built in memory."""
    if source in TINY_CONFIGS:
        full = tiny_model(source, seed, torch.float32)
        config, tokenizer, name = full.model.config, full.tokenizer, full.name
        weights: WeightRows = _InMemory(dict(full.model.state_dict()))
    else:
        path = smollm2_dir() if source == SMOLLM2 else Path(source).expanduser()
        if not (path / "config.json").exists():
            raise ValueError(f"unknown model source {source!r}: not a tiny model and not an HF directory")
        config = AutoConfig.from_pretrained(str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        name = SMOLLM2 if source == SMOLLM2 else str(path)
        weights = HfReader(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return LoadedModel(model, tokenizer, name), weights


def materialise(model: torch.nn.Module, weights: WeightRows, device: torch.device) -> None:
    """Allocate this rank's shards (to_empty) and fill them with their rows of the source; recompute the
    rotary buffers, which no checkpoint holds."""
    model.to_empty(device=device)
    fill_local_rows(model, weights)
    with torch.no_grad():
        for module in model.modules():
            if "RotaryEmbedding" in type(module).__name__:
                model._init_weights(module)  # type: ignore[operator]
        unknown = [n for n, _ in model.named_buffers() if "rotary_emb" not in n]
        if unknown:
            raise ValueError(f"sharded start-up cannot fill buffers {unknown[:5]} (only rotary embeddings)")


@torch.no_grad()
def fill_local_rows(model: torch.nn.Module, weights: WeightRows) -> None:
    """Copy this rank's rows of every parameter from ``weights`` into its local shard, in place."""
    for name, param in model.named_parameters():
        local, lo = _local_rows(param)
        if local.numel():
            local.copy_(weights.rows(name, lo, lo + local.shape[0]).to(local.dtype))


def _local_rows(param: torch.Tensor) -> tuple[torch.Tensor, int]:
    """This rank's tensor of ``param`` and the global index of its first row (FSDP shards dimension 0 in
    chunks of ceil(rows / world), as torch.chunk does)."""
    if not isinstance(param, DTensor):
        return param.data, 0
    placements = param.placements
    if len(placements) != 1 or not isinstance(placements[0], Shard) or placements[0].dim != 0:
        raise ValueError(f"expected a dimension-0 shard, got {placements}")
    world = param.device_mesh.size()
    chunk = -(-param.shape[0] // world)
    return param.to_local(), chunk * param.device_mesh.get_local_rank()


def split_batch(rows: list[tuple[int, int]], rank: int, world: int) -> list[int]:
    """This rank's examples (indices, in batch order): longest first to the least-loaded rank by padded
    tokens, so ranks get about equal work. The same on every rank (a function of the batch alone)."""
    load = [0] * world
    owner = [0] * len(rows)
    for i in sorted(range(len(rows)), key=lambda i: (-rows[i][0] * rows[i][1], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += rows[i][0] * rows[i][1]
    return [i for i in range(len(rows)) if owner[i] == rank]


def write_hf_shard(model: torch.nn.Module, tmp: Path, me: Rank, dtype: torch.dtype) -> dict[str, str]:
    """This rank's file of the HF-layout copy: whole tensors, each owned by one rank (largest first to the
    rank with the fewest bytes). Every rank gathers each tensor in turn (a collective), only its owner keeps
    it, so a rank holds its ~1/N share of the model plus one tensor. Returns {HF name: file name}."""
    named = list(model.named_parameters())
    load = [0] * me.world
    owner: dict[str, int] = {}
    for name, p in sorted(named, key=lambda np_: -np_[1].numel()):
        r = min(range(me.world), key=lambda r: (load[r], r))
        owner[name] = r
        load[r] += p.numel()
    fname = f"model-{me.rank + 1:05d}-of-{me.world:05d}.safetensors"
    mine: dict[str, torch.Tensor] = {}
    for name, p in named:
        full = p.full_tensor() if isinstance(p, DTensor) else p.detach()
        if owner[name] == me.rank:
            for hf_name, t in hf_pieces(name, full.detach().to(dtype)):
                mine[hf_name] = t.cpu().contiguous().clone()
        del full
    save_file(mine, str(tmp / fname), metadata={"format": "pt"})
    return {k: fname for k in mine}


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
    out["micro_batches"] = sum(p["micro_batches"] for p in parts)  # real passes, not the zero-weighted ones
    for key in ("chosen", "rejected", "clip", "dual_clip", "kl", "router_aux"):
        out[key] = [v for p in parts for v in p.get(key, [])]
    return out


def _global_numel(params: Any) -> int:
    return sum(int(torch.Size(p.shape).numel()) for p in params)  # a DTensor's shape is the global one


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
