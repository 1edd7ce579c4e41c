"""vLLM's CPU build as promptcot_worker.vllm_serve starts it by default ("after", engine.vllm.cpu_exclusive false:
the model inside the engine-core process, OpenMP threads that sleep at barriers) against vLLM's own CPU set-up
("before", cpu_exclusive true: a worker process of its own, busy-polled, and spinning OpenMP threads), side by
side, alternating, on the quickstart model.

Per server: start-up seconds (spawn to /health) and completion tokens/s for N requests of T tokens (seeded,
distinct short prompts, all in flight). --load K runs K busy processes beside the server the whole time, as a
test or a trainer beside it on a small machine would.

Run with the vLLM environment's python (bash scripts/vllm-env.sh prints it):
  $(bash scripts/vllm-env.sh) bench/vllm-cpu-modes.py --repeats 3 [--load 1] [--requests 128] [--tokens 24]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
MODES = {
    # engine.vllm.cpu_exclusive true: vLLM's own CPU set-up (a worker process, spinning OpenMP threads)
    "before": ([], {"PROMPTCOT_VLLM_CPU_SHARED": "0"}),
    # the default (false): the model in the engine-core process, OpenMP threads that sleep at barriers
    "after": ([], {"PROMPTCOT_VLLM_CPU_SHARED": "1"}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_dir() -> str:
    cache = Path(os.environ.get("PROMPTCOT_CACHE", Path.home() / ".cache" / "promptcot"))
    d = cache / "models" / "smollm2-135m-instruct"
    if not (d / "config.json").exists():
        sys.exit(f"no quickstart model at {d}: run the quickstart (or a vLLM test) once to convert it")
    return str(d)


def start(mode: str, port: int, log: Path) -> tuple[subprocess.Popen, float]:
    extra, env_extra = MODES[mode]
    env = {**os.environ, "VLLM_API_KEY": KEY, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_CPU_OMP_THREADS_BIND": f"0-{os.cpu_count() - 1}", "VLLM_SERVER_DEV_MODE": "1",
           "PYTHONPATH": str(ROOT / "python-workers"), **env_extra}
    args = [sys.executable, "-m", "promptcot_worker.vllm_serve", "--model", model_dir(), "--served-model-name", "policy",
            "--port", str(port), "--dtype", "float32", "--max-model-len", "256", "--max-num-seqs", "64",
            "--enforce-eager", "--disable-log-stats", "--seed", "7", *extra]
    t0 = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Authorization": f"Bearer {KEY}"})
    while True:
        if proc.poll() is not None:
            sys.exit(f"{mode} server exited ({proc.returncode}); log: {log}")
        try:
            with urllib.request.urlopen(req, timeout=2):
                return proc, time.monotonic() - t0
        except OSError:
            time.sleep(0.5)


async def throughput(port: int, n: int, tokens: int) -> float:
    async def one(s: aiohttp.ClientSession, i: int) -> int:
        body = {"model": "policy", "prompt": f"Question {i}: what is {i} + {3 * i}? Answer:", "max_tokens": tokens,
                "temperature": 0.8, "seed": i, "ignore_eos": True}
        async with s.post(f"http://127.0.0.1:{port}/v1/completions", json=body,
                          headers={"Authorization": f"Bearer {KEY}"}) as r:
            return (await r.json())["usage"]["completion_tokens"]

    async with aiohttp.ClientSession() as s:
        await one(s, -1)  # warm
        t0 = time.monotonic()
        done = await asyncio.gather(*[one(s, i) for i in range(n)])
        return sum(done) / (time.monotonic() - t0)


def busy() -> None:
    while True:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--load", type=int, default=0, help="busy processes beside the server")
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=24)
    a = ap.parse_args()
    hogs = [multiprocessing.Process(target=busy, daemon=True) for _ in range(a.load)]
    for h in hogs:
        h.start()
    logs = Path(tempfile.mkdtemp(prefix="vllm-cpu-modes-"))
    got: dict[str, dict[str, list[float]]] = {m: {"start": [], "tok_s": []} for m in MODES}
    try:
        for r in range(a.repeats):
            for mode in (MODES if r % 2 == 0 else reversed(list(MODES))):
                port = free_port()
                proc, started = start(mode, port, logs / f"{mode}-{r}.log")
                try:
                    rate = asyncio.run(throughput(port, a.requests, a.tokens))
                finally:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                got[mode]["start"].append(started)
                got[mode]["tok_s"].append(rate)
                print(f"repeat {r + 1} {mode:6s}: start-up {started:5.1f} s, {rate:6.1f} tok/s", flush=True)
    finally:
        for h in hogs:
            h.terminate()
    med = {m: {k: statistics.median(v) for k, v in d.items()} for m, d in got.items()}
    print(f"\nmedians over {a.repeats} ({a.requests} requests x {a.tokens} tokens, load {a.load}; logs {logs}):")
    for m in MODES:
        print(f"  {m:6s}: start-up {med[m]['start']:5.1f} s, {med[m]['tok_s']:6.1f} tok/s")
    print(f"  after/before: start-up x{med['after']['start'] / med['before']['start']:.2f}, "
          f"tok/s x{med['after']['tok_s'] / med['before']['tok_s']:.2f}")


if __name__ == "__main__":
    main()
