"""Peak memory of scoring and of one DPO step at long context with a Qwen-sized vocabulary, old path vs new.

    PY=$(bash -c 'source scripts/lib.sh; venv_python')
    $PY bench/worker-memory.py [--tokens 4096] [--vocab 151936] [--repeats 3] [--device cpu|cuda]

The model is tiny-random-qwen3 (2 layers, hidden 64) with a 151,936-token vocabulary, so the logits
dominate, as they do for a real model at long context. One pair: a shared prompt and a chosen and a
rejected completion, each row --tokens long. "old" is the worker's previous path (full [B, C, V] logits
copied to float32, no activation checkpointing); "new" is the default (log-probs in chunks of
memory.DEFAULT_CHUNK_TOKENS tokens, blocks checkpointed). Both run in this one invocation, interleaved,
each measurement in a fresh child process; the medians over --repeats are printed.

Memory: on CPU the child's peak RSS (VmHWM, reset through /proc/self/clear_refs after the model and
inputs are built) minus its RSS at that moment; on CUDA torch.cuda.max_memory_allocated minus the
allocated bytes at the same point. The figure is what the operation adds on top of the loaded model.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python-workers"))


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMeter:
    def __init__(self, device: str) -> None:
        import torch

        self.torch, self.cuda = torch, device.startswith("cuda")

    def reset(self) -> None:
        import gc

        gc.collect()
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
            self.base = self.torch.cuda.memory_allocated()
            return
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the baseline is what is live
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.base = rss_kib("VmRSS") * 1024

    def added_bytes(self) -> int:
        if self.cuda:
            self.torch.cuda.synchronize()
            return self.torch.cuda.max_memory_allocated() - self.base
        return rss_kib("VmHWM") * 1024 - self.base


def child(path: str, op: str, tokens: int, vocab: int, device: str) -> dict:
    import torch

    from promptcot_worker.backend_transformers import TransformersBackend
    from promptcot_worker.models import tiny_model
    from promptcot_worker.schema import Example, Hyper, LossKind

    torch.set_num_threads(2)
    loaded = tiny_model("tiny-random-qwen3", 0, torch.float32, vocab_size=vocab)
    loaded.model.config.max_position_embeddings = tokens + 8
    old = path == "old"
    backend = TransformersBackend(loaded, torch.device(device), "bench", logprob_chunk_tokens=0 if old else 256,
                                  gradient_checkpointing=not old)
    g = torch.Generator().manual_seed(1)
    prompt_len = 256
    prompt = torch.randint(3, vocab, (prompt_len,), generator=g).tolist()
    chosen, rejected = (torch.randint(3, vocab, (tokens - prompt_len,), generator=g).tolist() for _ in range(2))
    meter = PeakMeter(device)
    meter.reset()
    started = time.perf_counter()
    if op == "score":
        out = backend.score([(prompt, chosen), (prompt, rejected)], want_tokens=False)
        value = out[0].sum_logprob + out[1].sum_logprob
    else:
        example = Example(prompt=prompt, chosen=chosen, rejected=rejected, ref_chosen_logp=0.0, ref_rejected_logp=0.0)
        value = backend.train_step("bench", LossKind.DPO, [example], Hyper(learning_rate=1e-6, beta=0.1))["loss"]
    seconds = time.perf_counter() - started
    return {"path": path, "op": op, "added_bytes": meter.added_bytes(), "seconds": seconds, "value": value}


def run_child(args: argparse.Namespace, path: str, op: str) -> dict:
    argv = [sys.executable, __file__, "--child", path, op, "--tokens", str(args.tokens), "--vocab", str(args.vocab),
            "--device", args.device]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        return {"path": path, "op": op, "error": f"exit {done.returncode}: {done.stderr.strip()[-400:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=4096, help="tokens per row (prompt 256 + completion)")
    ap.add_argument("--vocab", type=int, default=151_936)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip", action="append", default=[], metavar="PATH:OP",
                    help="leave out a measurement, e.g. old:dpo_step (17.5 GiB at 4k tokens on CPU)")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "OP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.tokens, args.vocab, args.device)))
        return 0
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeats):
        for op in ("score", "dpo_step"):
            for path in ("old", "new"):
                if f"{path}:{op}" in args.skip:
                    continue
                r = run_child(args, path, op)
                results.setdefault((op, path), []).append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    print(f"tokens/row {args.tokens}, vocab {args.vocab}, device {args.device}, medians of {args.repeats}")
    print(f"{'operation':<10} {'path':<4} {'peak added (MiB)':>17} {'seconds':>8}  value")
    for (op, path), rs in results.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            print(f"{op:<10} {path:<4} failed: {rs[0]['error']}")
            continue
        mib = statistics.median(r["added_bytes"] for r in ok) / 2**20
        sec = statistics.median(r["seconds"] for r in ok)
        print(f"{op:<10} {path:<4} {mib:>17.0f} {sec:>8.2f}  {ok[0]['value']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
