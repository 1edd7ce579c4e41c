"""HF safetensors files streamed out of a sharded checkpoint's DCP shards, one tensor at a time.

``promptcot export`` of a sharded trainer's checkpoint: the fp32 weights the ranks wrote with
torch.distributed.checkpoint (``dcp/``) become safetensors in the checkpoint's compute dtype (config.json),
named and split as HF writes them (hf_layout.hf_pieces: fused experts per expert). Each file's header is
built from the DCP metadata alone (shapes are known before any tensor is read), then each tensor is read
from the shards, cast and written in turn, so this process holds one tensor, never the model.

    python -m promptcot_worker.dcp_export --checkpoint CKPT --out DIR [--max-file-bytes N]
"""

from __future__ import annotations

import argparse
import json
import struct
import warnings
from pathlib import Path

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from .checkpoint import DCP_DIR
from .hf_layout import INDEX_FILE, hf_pieces

_MODEL = "model."
_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def compute_dtype(ckpt: Path) -> torch.dtype:
    cfg = json.loads((ckpt / "config.json").read_text())
    name = cfg.get("dtype") or cfg.get("torch_dtype") or "float32"
    return getattr(torch, str(name).removeprefix("torch."))


def dcp_params(ckpt: Path) -> list[tuple[str, torch.Size]]:
    """(parameter name, full shape) of every model tensor in the DCP metadata, in the order saved."""
    meta = FileSystemReader(str(ckpt / DCP_DIR)).read_metadata().state_dict_metadata
    return [(k.removeprefix(_MODEL), m.size) for k, m in meta.items()
            if k.startswith(_MODEL) and isinstance(m, TensorStorageMetadata)]


def read_param(ckpt: Path, name: str) -> torch.Tensor:
    """One parameter, whole, read from every rank's shard file (only that tensor's chunks)."""
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        state = _load_state_dict_from_keys({_MODEL + name}, checkpoint_id=str(ckpt / DCP_DIR))
    return state["model"][name]


def plan_files(params: list[tuple[str, torch.Size]], dtype: torch.dtype,
               max_file_bytes: int) -> list[list[tuple[str, torch.Size]]]:
    """Parameters grouped into output files of at most max_file_bytes (a larger tensor gets a file alone)."""
    width = torch.empty((), dtype=dtype).element_size()
    files: list[list[tuple[str, torch.Size]]] = [[]]
    used = 0
    for name, size in params:
        nbytes = size.numel() * width
        if files[-1] and used + nbytes > max_file_bytes:
            files.append([])
            used = 0
        files[-1].append((name, size))
        used += nbytes
    return files


def _header(group: list[tuple[str, torch.Size]], dtype: torch.dtype) -> bytes:
    """The safetensors header of a file holding these parameters' HF pieces, in the order they are written."""
    entries: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, size in group:
        for hf_name, piece in hf_pieces(name, torch.empty(size, dtype=dtype, device="meta")):
            n = piece.numel() * piece.element_size()
            entries[hf_name] = {"dtype": _DTYPES[dtype], "shape": list(piece.shape), "data_offsets": [offset, offset + n]}
            offset += n
    raw = json.dumps(entries, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it


def write_file(ckpt: Path, path: Path, group: list[tuple[str, torch.Size]], dtype: torch.dtype) -> list[str]:
    header = _header(group, dtype)
    names: list[str] = []
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for name, size in group:
            full = read_param(ckpt, name)
            if full.shape != size:
                raise ValueError(f"{name}: the DCP metadata says {tuple(size)}, its shards hold {tuple(full.shape)}")
            for hf_name, piece in hf_pieces(name, full.to(dtype)):
                f.write(piece.contiguous().view(torch.uint8).numpy().tobytes())
                names.append(hf_name)
            del full
    return names


def export_dcp(ckpt: Path, out: Path, max_file_bytes: int = 4 << 30) -> list[str]:
    """Writes the safetensors files (and their index when there are several) into the existing dir `out`."""
    dtype = compute_dtype(ckpt)
    if dtype not in _DTYPES:
        raise ValueError(f"{ckpt}/config.json: dtype {dtype} is not one the export writes ({', '.join(map(str, _DTYPES))})")
    groups = plan_files(dcp_params(ckpt), dtype, max_file_bytes)
    if len(groups) == 1:
        write_file(ckpt, out / "model.safetensors", groups[0], dtype)
        return ["model.safetensors"]
    weight_map: dict[str, str] = {}
    files = []
    for i, group in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        weight_map.update({n: fname for n in write_file(ckpt, out / fname, group, dtype)})
        files.append(fname)
    (out / INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
    return [*files, INDEX_FILE]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="promptcot_worker.dcp_export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, type=Path, help="a sharded checkpoint directory (with dcp/)")
    ap.add_argument("--out", required=True, type=Path, help="an existing directory to write the safetensors into")
    ap.add_argument("--max-file-bytes", type=int, default=4 << 30, help="split the weights into files of at most this")
    args = ap.parse_args(argv)
    print(json.dumps({"files": export_dcp(args.checkpoint, args.out, args.max_file_bytes)}))


if __name__ == "__main__":
    main()
