"""The live model's parameters against the HF safetensors layout, one tensor (or a slice of one) at a time.

transformers 5 keeps a MoE layer's experts fused in memory (``experts.gate_up_proj`` [E, 2I, H] and
``experts.down_proj`` [E, H, I]) but writes and reads them per expert (``experts.e.gate_proj.weight`` [I, H],
``experts.e.up_proj.weight``, ``experts.e.down_proj.weight``). A sharded rank reads and writes only its rows of
dimension 0, which for a fused tensor are whole experts, so it never builds a whole layer, let alone the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open

INDEX_FILE = "model.safetensors.index.json"
_FUSED_GATE_UP = ".experts.gate_up_proj"
_FUSED_DOWN = ".experts.down_proj"


def hf_pieces(name: str, tensor: torch.Tensor, first_row: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, tensor) pairs for the live parameter ``name``; ``tensor`` holds rows first_row.. of dimension 0."""
    if name.endswith(_FUSED_GATE_UP):
        stem = name.removesuffix(_FUSED_GATE_UP)
        half = tensor.shape[1] // 2
        for i, expert in enumerate(tensor):
            e = first_row + i
            yield f"{stem}.experts.{e}.gate_proj.weight", expert[:half]
            yield f"{stem}.experts.{e}.up_proj.weight", expert[half:]
    elif name.endswith(_FUSED_DOWN):
        stem = name.removesuffix(_FUSED_DOWN)
        for i, expert in enumerate(tensor):
            yield f"{stem}.experts.{first_row + i}.down_proj.weight", expert
    else:
        yield name, tensor


class HfReader:
    """Lazily opened safetensors files of an HF directory (single file or sharded with an index)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        index = path / INDEX_FILE
        if index.exists():
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        else:
            files = sorted(path.glob("*.safetensors"))
            if not files:
                raise FileNotFoundError(f"no *.safetensors in {path}")
            weight_map = {}
            for f in files:
                with safe_open(str(f), "pt") as fh:
                    weight_map.update({k: f.name for k in fh.keys()})
        self.weight_map = weight_map
        self._open: dict[str, object] = {}

    def _handle(self, key: str) -> object:
        if key not in self.weight_map:
            raise KeyError(f"{self.path} has no tensor {key!r}")
        fname = self.weight_map[key]
        if fname not in self._open:
            self._open[fname] = safe_open(str(self.path / fname), "pt")
        return self._open[fname]

    def has(self, name: str) -> bool:
        if name.endswith(_FUSED_GATE_UP):
            return f"{name.removesuffix(_FUSED_GATE_UP)}.experts.0.gate_proj.weight" in self.weight_map
        if name.endswith(_FUSED_DOWN):
            return f"{name.removesuffix(_FUSED_DOWN)}.experts.0.down_proj.weight" in self.weight_map
        return name in self.weight_map

    def rows(self, name: str, lo: int, hi: int) -> torch.Tensor:
        """Rows [lo, hi) of dimension 0 of the live parameter ``name``, read without loading the rest."""
        if name.endswith(_FUSED_GATE_UP):
            stem = name.removesuffix(_FUSED_GATE_UP)
            return torch.stack([torch.cat([self._full(f"{stem}.experts.{e}.gate_proj.weight"),
                                           self._full(f"{stem}.experts.{e}.up_proj.weight")]) for e in range(lo, hi)])
        if name.endswith(_FUSED_DOWN):
            stem = name.removesuffix(_FUSED_DOWN)
            return torch.stack([self._full(f"{stem}.experts.{e}.down_proj.weight") for e in range(lo, hi)])
        return self._handle(name).get_slice(name)[lo:hi]  # type: ignore[attr-defined]

    def _full(self, key: str) -> torch.Tensor:
        return self._handle(key).get_tensor(key)  # type: ignore[attr-defined]
