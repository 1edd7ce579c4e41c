"""Compares two checkpoint directories tensor by tensor: model.safetensors and optimizer.pt.

Prints one JSON line: {"weights": {...}, "optimizer": {...}}, each with the keys present in only one
side and the largest absolute difference over the shared tensors (0.0 = bit-identical values).
Usage: python compare_checkpoints.py DIR_A DIR_B
"""

import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/lists of tensors and scalars -> {"a/b/0": leaf}."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in flatten(val, f"{prefix}{key}/").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in flatten(val, f"{prefix}{i}/").items()}
    return {prefix.rstrip("/"): obj}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    worst, where = 0.0, ""
    for key in sorted(a.keys() & b.keys()):
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor):
            if x.shape != y.shape or x.dtype != y.dtype:
                return {"mismatch": f"{key}: {x.dtype}{tuple(x.shape)} vs {y.dtype}{tuple(y.shape)}"}
            diff = float((x.double() - y.double()).abs().max()) if x.numel() else 0.0
        else:
            diff = 0.0 if x == y else float("inf")
        if diff > worst:
            worst, where = diff, key
    return {"only_a": sorted(a.keys() - b.keys()), "only_b": sorted(b.keys() - a.keys()), "tensors": len(a),
            "max_abs_diff": worst, "worst_key": where}


def main(da: Path, db: Path) -> None:
    weights = compare(load_file(str(da / "model.safetensors")), load_file(str(db / "model.safetensors")))
    opt = [flatten(torch.load(d / "optimizer.pt", weights_only=True)) for d in (da, db)]
    print(json.dumps({"weights": weights, "optimizer": compare(opt[0], opt[1])}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
