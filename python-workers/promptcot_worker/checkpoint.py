"""Checkpoint directories: HF weights + tokenizer, optimizer, RNG states, worker metadata.

Written to ``<path>.tmp-<pid>`` and renamed, so a crash never leaves a half-written ``path``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import PreTrainedModel

META_FILE = "worker_meta.json"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.pt"
# fp32 master weights of a bf16 trainer (precision.MasterWeights); model.safetensors holds them rounded.
MASTER_FILE = "master_fp32.pt"
# A sharded trainer's checkpoint: torch.distributed.checkpoint files of the fp32 weights and the optimizer
# ({"model": {fqn: tensor}, "optim": torch's FQN-keyed optimizer state}); each rank's RNG in rng-<rank>.pt.
DCP_DIR = "dcp"


def is_dcp(path: Path) -> bool:
    return (path / DCP_DIR).is_dir()


def has_optimizer(path: Path) -> bool:
    """The checkpoint holds optimizer state (single-rank optimizer.pt, or a sharded one written with it)."""
    return (path / OPTIMIZER_FILE).exists() or (is_dcp(path) and bool(read_meta(path).get("has_optimizer")))


def rank_rng_file(rank: int) -> str:
    return f"rng-{rank}.pt"


def read_dcp(path: Path) -> dict[str, Any]:
    """A sharded checkpoint's whole DCP state in this process (plain tensors): for a single-rank trainer,
    which holds the whole model anyway."""
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        return _load_state_dict_from_keys(checkpoint_id=str(path / DCP_DIR))


def indexed_optimizer_state(named: dict[str, Any]) -> dict[str, Any]:
    """torch's FQN-keyed optimizer state → the single-rank optimizer.state_dict() layout (parameters
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


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain values, so rng.pt loads with weights_only=True (no pickle code)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def save(
    path: Path,
    model: PreTrainedModel,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer | dict[str, Any] | None,
    meta: dict[str, Any],
    masters: dict[str, torch.Tensor] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> int:
    """Write a checkpoint directory at ``path`` (which must not exist); returns its size in bytes.

    ``optimizer`` may be a ready state dict and ``state_dict`` the model's full weights: a sharded trainer's
    rank 0 passes what it gathered, since its own parameters are shards."""
    if path.exists():
        raise FileExistsError(f"checkpoint path already exists: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(str(tmp), state_dict=state_dict)
        tokenizer.save_pretrained(str(tmp))
        if optimizer is not None:
            state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
            torch.save(state, tmp / OPTIMIZER_FILE)
        if masters:
            torch.save({k: v.detach().cpu() for k, v in masters.items()}, tmp / MASTER_FILE)
        torch.save(rng_state(), tmp / RNG_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        if path.exists():  # created by someone else meanwhile; rename would merge into an empty dir
            raise FileExistsError(f"checkpoint path already exists: {path}")
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dir_bytes(path)


def read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / META_FILE
    return json.loads(meta_file.read_text()) if meta_file.exists() else {}


def meta_for_load(path: Path, trainable_layers: int, load_optimizer: bool) -> dict[str, Any]:
    """The checkpoint's metadata, refusing a missing directory or optimizer state for other trainable layers."""
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    meta = read_meta(path)
    saved_layers = meta.get("trainable_layers", trainable_layers)
    if load_optimizer and saved_layers != trainable_layers:
        raise ValueError(f"optimizer state is for --trainable-layers {saved_layers}, this worker has {trainable_layers}")
    return meta


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint's *.safetensors files."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {path}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def load_weights(path: Path, model: PreTrainedModel) -> None:
    """Copy saved tensors into the live parameters in place, so optimizer references stay valid."""
    state = read_safetensors(path)
    live = model.state_dict()
    if set(state) - set(live):
        state = _converted_state(path, model)
    unknown = sorted(set(state) - set(live))
    if unknown:
        raise ValueError(f"checkpoint has tensors the model lacks: {unknown[:5]}")
    missing = sorted(set(live) - set(state) - _shares_storage_with(live, set(state)))
    if missing:
        raise ValueError(f"checkpoint lacks tensors: {missing[:5]}")
    with torch.no_grad():
        for name, tensor in state.items():
            if live[name].shape != tensor.shape:
                raise ValueError(f"shape mismatch for {name}: {tuple(tensor.shape)} vs {tuple(live[name].shape)}")
            live[name].copy_(tensor)


def _converted_state(path: Path, model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under the live model's names when save_pretrained renamed them: transformers
    5 fuses MoE experts in memory (experts.gate_up_proj) and writes them per expert (experts.0.gate_proj), so
    its own loader, which knows the mapping, reads the directory."""
    loaded = type(model).from_pretrained(str(path), dtype=model.dtype, device_map="cpu")
    return loaded.state_dict()


def _shares_storage_with(live: dict[str, torch.Tensor], loaded: set[str]) -> set[str]:
    """Names tied to a loaded tensor (e.g. lm_head.weight and the embeddings): save_pretrained writes one copy."""
    loaded_ptrs = {live[n].data_ptr() for n in loaded if n in live}
    return {n for n, t in live.items() if t.data_ptr() in loaded_ptrs}


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Norm scales and biases are not shrunk by weight decay (they set scales and offsets, not capacity)."""
    module = name.rsplit(".", 1)[0] if "." in name else ""
    return param.ndim < 2 or name.endswith("bias") or module.endswith("norm")


def decay_groups(names: list[str], params: list[torch.Tensor]) -> list[tuple[bool, list[int]]]:
    """(decay?, indices into ``params``) for the optimizer's param groups; empty groups left out."""
    decay = [i for i, (n, p) in enumerate(zip(names, params)) if not no_decay(n, p)]
    plain = [i for i, (n, p) in enumerate(zip(names, params)) if no_decay(n, p)]
    return [(d, idx) for d, idx in ((True, decay), (False, plain)) if idx]


def load_optimizer_state(path: Path, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> dict[str, Any]:
    """The saved optimizer state, fitted to ``optimizer``'s param groups.

    Checkpoints written before the decay/no-decay split hold one group over ``params`` in order; their
    per-parameter state is moved to the parameter's new group, so old runs resume exactly."""
    f = path / OPTIMIZER_FILE
    if not f.exists():
        raise FileNotFoundError(f"checkpoint has no {OPTIMIZER_FILE}: {path}")
    saved = torch.load(f, map_location="cpu", weights_only=True)
    live = optimizer.param_groups
    sizes = [len(g["params"]) for g in saved["param_groups"]]
    if sizes == [len(g["params"]) for g in live]:
        return saved
    if len(sizes) == 1 and sizes[0] == len(params):
        return _regroup(saved, live, params)
    raise ValueError(
        f"{f}: optimizer state has param groups of sizes {sizes}, this trainer has "
        f"{[len(g['params']) for g in live]} (same model and --trainable-layers?); "
        "load the checkpoint without its optimizer (load_optimizer=false) to start a fresh optimizer"
    )


def _regroup(saved: dict[str, Any], live: list[dict[str, Any]], params: list[torch.Tensor]) -> dict[str, Any]:
    index = {id(p): i for i, p in enumerate(params)}
    order = [index[id(p)] for g in live for p in g["params"]]  # old index of each new position
    hyper = {k: v for k, v in saved["param_groups"][0].items() if k != "params"}
    groups, start = [], 0
    for g in live:
        n = len(g["params"])
        groups.append({**hyper, "decay": g.get("decay", True), "params": list(range(start, start + n))})
        start += n
    state = {new: saved["state"][old] for new, old in enumerate(order) if old in saved["state"]}
    return {"state": state, "param_groups": groups}


def load_masters(path: Path, mmap: bool = False) -> dict[str, torch.Tensor] | None:
    """The fp32 masters of a single-rank bf16 checkpoint; ``mmap`` maps the file (a sharded rank reads its rows)."""
    f = path / MASTER_FILE
    return torch.load(f, map_location="cpu", weights_only=True, mmap=mmap) if f.exists() else None


def load_rng(path: Path, rank: int = 0) -> None:
    """This rank's RNG state: a sharded checkpoint has one per rank (rank 0's for a rank it did not have)."""
    candidates = [path / rank_rng_file(rank), path / rank_rng_file(0), path / RNG_FILE]
    f = next((c for c in candidates if c.exists()), None)
    if f is not None:
        restore_rng(torch.load(f, map_location="cpu", weights_only=True))
