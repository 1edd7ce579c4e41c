"""Measure a real worker over gRPC: decode tokens/s, DPO step seconds, peak RSS.

    PYTHONPATH=python-workers python -m promptcot_worker.bench_worker [--model smollm2-135m-instruct]

Starts one worker per --trainable-layers setting and prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

import grpc

from . import auth
from .gen import promptcot_worker_pb2 as pb
from .gen import promptcot_worker_pb2_grpc as pb_grpc

STORY = [pb.ChatMessage(role="user", content="Write a long, detailed story about a lighthouse keeper.")]


def start(model: str, extra: list[str]) -> tuple[subprocess.Popen, pb_grpc.WorkerStub]:
    argv = [sys.executable, "-m", "promptcot_worker.server", "--port", "0", "--model", model, *extra]
    secret = secrets.token_hex(32)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), auth.SECRET_ENV: secret}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PROMPTCOT_READY "):
        proc.kill()
        raise SystemExit(f"worker did not start: {line!r}")
    port = json.loads(line.split(" ", 1)[1])["port"]
    channel = auth.with_secret(grpc.insecure_channel(f"127.0.0.1:{port}"), secret)
    return proc, pb_grpc.WorkerStub(channel)


def peak_rss_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return float("nan")


def bench_generate(stub: pb_grpc.WorkerStub, n: int, max_tokens: int) -> dict:
    req = pb.GenerateRequest(
        prompts=[pb.PromptInput(id="bench", messages=STORY, sample_seeds=list(range(n)))],
        sampling=pb.SamplingParams(temperature=1.0, max_tokens=max_tokens),
    )
    started = time.perf_counter()
    tokens = sum(len(r.token_ids) for r in stub.Generate(req))
    seconds = time.perf_counter() - started
    return {"what": "generate", "samples": n, "max_tokens": max_tokens, "tokens": tokens,
            "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1)}


def dpo_batch(stub: pb_grpc.WorkerStub, pairs: int, prompt_len: int, completion_len: int) -> list[pb.TrainExample]:
    rng = random.Random(0)

    def toks(k: int) -> list[int]:
        return [rng.randrange(10, 40000) for _ in range(k)]

    raw = [(toks(prompt_len), toks(completion_len), toks(completion_len)) for _ in range(pairs)]
    items = [pb.ScoreItem(prompt_token_ids=p, completion_token_ids=c) for p, c, _ in raw]
    items += [pb.ScoreItem(prompt_token_ids=p, completion_token_ids=r) for p, _, r in raw]
    refs = stub.ScoreLogProbs(pb.ScoreRequest(items=items)).results
    return [pb.TrainExample(prompt_token_ids=p, chosen_token_ids=c, rejected_token_ids=r,
                            ref_chosen_logp=refs[i].sum_logprob, ref_rejected_logp=refs[pairs + i].sum_logprob)
            for i, (p, c, r) in enumerate(raw)]


def bench_dpo(stub: pb_grpc.WorkerStub, layers: int, micro: int, steps: int) -> dict:
    batch = dpo_batch(stub, pairs=8, prompt_len=64, completion_len=128)
    hyper = pb.TrainHyper(learning_rate=1e-6, beta=0.1, micro_batch_size=micro, max_grad_norm=1.0)
    times = []
    for i in range(steps):
        started = time.perf_counter()
        stub.TrainStep(pb.TrainStepRequest(step_id=f"bench-{i}", loss=pb.DPO, examples=batch, hyper=hyper))
        times.append(time.perf_counter() - started)
    return {"what": "dpo_step", "pairs": 8, "tokens_per_sequence": 192, "trainable_layers": layers or "all",
            "micro_batch_size": micro, "seconds_each": [round(t, 2) for t in times]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--micro-batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    for layers in (0, 4):
        proc, stub = start(args.model, ["--trainable-layers", str(layers)])
        try:
            if layers == 0:
                bench_generate(stub, 8, 8)  # warm-up
                print(json.dumps(bench_generate(stub, 8, args.max_tokens)), flush=True)
            print(json.dumps(bench_dpo(stub, layers, args.micro_batch_size, args.steps)), flush=True)
            print(json.dumps({"what": "peak_rss_mib", "trainable_layers": layers or "all",
                              "value": round(peak_rss_mib(proc.pid), 1)}), flush=True)
        finally:
            stub.Shutdown(pb.ShutdownRequest())
            proc.wait(30)


if __name__ == "__main__":
    main()
