"""vLLM as a rollout engine on GPU machines, written against vLLM's documented offline API
(``vllm.LLM``, ``vllm.SamplingParams``, ``LLM.chat``, ``LLM.collective_rpc``, ``LLM.reset_prefix_cache``).

vLLM is imported only when an engine is built, so this module (and its request building) loads and is tested
on machines without vLLM. It cannot run on our CPU-only machines: vLLM needs a GPU build; nothing here was
executed against a real vLLM. The other route to vLLM needs no code on this side: ``vllm serve MODEL`` plus
``engine: {type: vllm, base_url: http://HOST:8000/v1}`` goes through the controller's OpenAI-compatible client.

Weight sync: the policy checkpoint (HF safetensors dir) is loaded into the running engine's model on every
worker through ``collective_rpc`` and a worker extension (vLLM's ``worker_extension_cls``: the pattern of its
RLHF examples), calling the model's own ``load_weights`` (which handles vLLM's fused/sharded layouts), then the
prefix cache is reset because cached KV entries were computed by the old weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

EXTENSION = "promptcot_worker.vllm_engine.PromptcotWorkerExtension"


def sampling_kwargs(sampling: dict[str, Any], seed: int, logprobs: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one sample (our sampling dict: the config's names)."""
    top_k = int(sampling.get("top_k", 0))
    kwargs: dict[str, Any] = {
        "n": 1,  # one seed per sample, so every sample is its own request
        "seed": int(seed),
        "temperature": float(sampling["temperature"]),
        "top_p": float(sampling.get("top_p", 1.0)),
        "top_k": top_k if top_k > 0 else -1,  # vLLM: -1 disables top-k
        "min_p": float(sampling.get("min_p", 0.0)),
        "repetition_penalty": float(sampling.get("repetition_penalty", 1.0)),
        "max_tokens": int(sampling["max_tokens"]),
        "stop": list(sampling.get("stop", [])),
    }
    if logprobs:
        kwargs["logprobs"] = 0  # vLLM: 0 = only the sampled token's log-prob
    return kwargs


def expand(prompts: list[dict[str, Any]]) -> list[tuple[str, int, list[dict[str, str]], int]]:
    """(prompt id, position, messages, seed) per wanted sample, in request order."""
    out = []
    for p in prompts:
        if not p.get("seeds"):
            raise ValueError(f"prompt {p.get('id')!r}: no seeds (one per wanted sample)")
        out.extend((p["id"], i, p["messages"], int(s)) for i, s in enumerate(p["seeds"]))
    return out


def engine_kwargs(model: str, cfg: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` from the config's ``engine.vllm`` block."""
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": int(cfg.get("tensor_parallel_size", 1)),
        "gpu_memory_utilization": float(cfg.get("gpu_memory_utilization", 0.9)),
        "dtype": cfg.get("dtype", "auto"),
        "enforce_eager": bool(cfg.get("enforce_eager", False)),
        "seed": seed,
        "worker_extension_cls": EXTENSION,
    }
    if cfg.get("max_model_len"):
        kwargs["max_model_len"] = int(cfg["max_model_len"])
    return kwargs


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


class VllmEngine:
    def __init__(self, model: str, cfg: dict[str, Any], seed: int = 0):
        try:
            import vllm  # noqa: F401  (lazy: GPU machines only)
        except ImportError as e:
            raise RuntimeError(
                "engine.type vllm needs the vllm package on a GPU machine (pip install vllm); "
                "it is not installed here. Use engine.type llama_cpp on CPU."
            ) from e
        from vllm import LLM

        self.llm = LLM(**engine_kwargs(model, cfg, seed))

    def generate(self, prompts: list[dict[str, Any]], sampling: dict[str, Any], chat_template_kwargs: dict[str, Any] | None = None,
                 logprobs: bool = False) -> list[dict[str, Any]]:
        from vllm import SamplingParams

        jobs = expand(prompts)
        params = [SamplingParams(**sampling_kwargs(sampling, seed, logprobs)) for _, _, _, seed in jobs]
        outputs = self.llm.chat([m for _, _, m, _ in jobs], sampling_params=params, use_tqdm=False,
                                chat_template_kwargs=chat_template_kwargs or None)
        return [self._sample(j, o, logprobs) for j, o in zip(jobs, outputs)]

    @staticmethod
    def _sample(job: tuple, out: Any, logprobs: bool) -> dict[str, Any]:
        pid, position, _, _ = job
        c = out.outputs[0]
        sample = {"prompt_id": pid, "position": position, "text": c.text, "token_ids": list(c.token_ids),
                  "prompt_token_ids": list(out.prompt_token_ids or []), "finish_reason": _finish(c.finish_reason)}
        if logprobs and c.logprobs:
            sample["logprobs"] = [step[t].logprob for t, step in zip(c.token_ids, c.logprobs)]
        return sample

    def load_checkpoint(self, path: str) -> None:
        """Weight sync: every worker loads the checkpoint's tensors into its model, then cached prefixes go."""
        self.llm.collective_rpc("promptcot_load_safetensors", args=(str(path),))
        self.llm.reset_prefix_cache()


def iter_safetensors(path: str) -> Iterator[tuple[str, Any]]:
    from safetensors.torch import safe_open

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: no *.safetensors (expected an HF checkpoint directory)")
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for name in fh.keys():
                yield name, fh.get_tensor(name)


class PromptcotWorkerExtension:
    """Mixed into vLLM's GPU worker (``worker_extension_cls``); methods are called through collective_rpc."""

    def promptcot_load_safetensors(self, path: str) -> None:
        self.model_runner.model.load_weights(weights=iter_safetensors(path))  # type: ignore[attr-defined]
