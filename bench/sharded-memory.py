"""Per-rank memory and time of the sharded trainer (FSDP2, gloo, CPU) on a random Qwen3-MoE, 1, 2 and 4 ranks.

    PY=$(bash -c 'source scripts/lib.sh; venv_python')
    $PY bench/sharded-memory.py [--ranks 1,2,4] [--layers 8] [--experts 48] [--steps 3] [--json OUT]

"1 rank" is what `workers.trainer_ranks: 1` runs: the single-rank worker backend (the whole model loaded,
no FSDP); `--sharded-one` runs a one-rank FSDP group instead. test/planner-measured.test.ts runs this bench
at 1, 2 and 4 ranks and compares each rank's peaks with the placement planner's prediction.

The model (Qwen3-MoE architecture, SmolLM2's 49,152-token vocabulary, untied head) is written once as an HF
directory in fp32; every group then starts from it the way a trainer rank does (ShardedBackend.start: meta
device, fully_shard, each rank reads its rows of the safetensors). Per rank, in its own process:

- start: peak RSS added by start-up (VmHWM reset through /proc/self/clear_refs just before; libraries imported),
  which counts the safetensors pages a rank reads through mmap (file-backed, reclaimable page cache), and
  the anonymous RSS (RssAnon: the rank's own tensors and heap) added by start-up, read after it;
- resident: RSS after start-up (freed heap handed back) over the same baseline;
- step: peak RSS added by the DPO steps over what was resident after start-up (AdamW state and gradients
  appear here: fp32 masters + grads + two moments = 16 bytes per local parameter);
- step seconds: median over --steps DPO steps (the first step, which builds the optimizer, is left out);
- with --checkpoints (at the largest world size <= 2 listed): seconds to save and to load a checkpoint
  through DCP (each rank its shards, plus the ranks' HF copy) against the old path, which gathered full
  weights, masters and optimizer into rank 0 and wrote the single-rank layout (save_checkpoint_gathered), and
  loaded that layout on every rank.

"old start" is what the previous ShardedBackend did first on every rank: load the whole model (fp32) on the
CPU. Its added RSS is measured in a child of its own and is a lower bound of that path's start-up peak.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python-workers"))
sys.path.insert(0, str(ROOT / "python-workers" / "tests"))

GIB = 2**30


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> int:
    """Hand freed heap back, reset VmHWM to the current RSS; returns that RSS in bytes."""
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return rss_kib("VmRSS") * 1024


def peak_added(base: int) -> int:
    return rss_kib("VmHWM") * 1024 - base


def build_model(path: Path, layers: int, experts: int, hidden: int = 512, expert_width: int = 256,
                heads: tuple[int, int, int] = (8, 4, 64)) -> int:
    import torch
    from transformers import AutoModelForCausalLM, Qwen3MoeConfig

    from promptcot_worker.models import load_source

    tokenizer = load_source("tiny-random-llama", 0, torch.float32).tokenizer
    cfg = Qwen3MoeConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, moe_intermediate_size=expert_width,
        num_hidden_layers=layers, num_attention_heads=heads[0], num_key_value_heads=heads[1], head_dim=heads[2],
        num_experts=experts,
        num_experts_per_tok=min(4, experts), decoder_sparse_step=1, norm_topk_prob=True, router_aux_loss_coef=0.01,
        max_position_embeddings=4096, tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return sum(p.numel() for p in model.parameters())


def batch(n_pairs: int, tokens: int) -> list:
    import random

    from promptcot_worker.schema import Example

    rng = random.Random(1)
    ids = lambda n: [rng.randrange(3, 40000) for _ in range(n)]  # noqa: E731
    return [Example(prompt=ids(tokens // 2), chosen=ids(tokens // 2), rejected=ids(tokens // 2 - 7),
                    ref_chosen_logp=-1.0, ref_rejected_logp=-1.0) for _ in range(n_pairs)]


def rank_main(rank: int, world: int, port: int, model_dir: str, out: str, steps: int, pairs: int, tokens: int,
              checkpoints: bool, sharded_one: bool = False, warm_dir: str = "") -> None:
    import torch
    import torch.distributed as dist

    from promptcot_worker.schema import Hyper

    torch.set_num_threads(1)
    single = world == 1 and not sharded_one
    if not single:
        from promptcot_worker.sharded import Rank, init_group

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        me = Rank(rank, world)
        init_group(me, torch.device("cpu"))
    rec: dict = {"rank": rank, "world": world, "backend": "single" if single else "sharded"}
    examples, hyper = batch(pairs, tokens), Hyper(learning_rate=1e-5, beta=0.1, micro_batch_size=1)
    if warm_dir:
        # A twin of a few MB started and stepped twice: the first time, what the runtime allocates once per
        # process (lazily imported modules, FSDP/DTensor and autograd state, allocator arenas) joins the
        # baseline; the second is measured as the model itself is, so a test can subtract it (the tokenizer,
        # the skeleton, the logits of the same batch: what does not depend on the model's size).
        for _ in range(2):
            rec["twin"] = measure(lambda: start_backend(warm_dir, world, rank, single), examples, hyper, 1, single)[0]
    figures, backend, seconds = measure(lambda: start_backend(model_dir, world, rank, single), examples, hyper, steps, single)
    rec.update(figures)
    rec["step_seconds"] = statistics.median(seconds[1:])
    params = list(backend.model.parameters())
    rec["local_params"] = sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in params)
    if checkpoints and not single:
        rec.update(checkpoint_times(backend, Path(out), dist))
    (Path(out) / f"rank-{world}-{rank}.json").write_text(json.dumps(rec))
    if not single:
        dist.destroy_process_group()


def measure(start, examples, hyper, steps: int, single: bool, base: int | None = None):  # noqa: ANN001, ANN201
    """Peak RSS added by start(), what stays after it, and the peak added by steps + 1 DPO steps over that."""
    import torch.distributed as dist

    from promptcot_worker.schema import LossKind

    base = reset_peak() if base is None else base
    anon = rss_kib("RssAnon") * 1024
    backend = start()
    out = {"baseline": base, "start_added": peak_added(base), "start_anon": rss_kib("RssAnon") * 1024 - anon}
    after_start = reset_peak()
    out["start_resident"] = after_start - base
    seconds = []
    for i in range(steps + 1):
        if not single:
            dist.barrier()
        t0 = time.perf_counter()
        backend.train_step(f"s{i}", LossKind.DPO, examples, hyper)
        seconds.append(time.perf_counter() - t0)
    out["step_added"] = peak_added(after_start)
    return out, backend, seconds


def start_backend(model_dir: str, world: int, rank: int, single: bool):  # noqa: ANN201
    """What the worker server starts (server.py load): the single-rank backend, or a rank of the group."""
    import torch

    from promptcot_worker.backend_transformers import TransformersBackend
    from promptcot_worker.models import load_source
    from promptcot_worker.sharded import Rank, ShardedBackend

    if single:
        return TransformersBackend(load_source(model_dir, 0, torch.float32), torch.device("cpu"), model_dir)
    return ShardedBackend.start(model_dir, 0, torch.device("cpu"), Rank(rank, world), torch.float32)


def checkpoint_times(backend, out: Path, dist) -> dict:  # noqa: ANN001
    """Save and load through DCP and through the old gather-to-rank-0 layout, interleaved, twice each."""
    times: dict[str, list[float]] = {"dcp_save": [], "dcp_load": [], "gathered_save": [], "gathered_load": []}
    for rep in range(2):
        for kind, save in (("dcp", backend.save_checkpoint), ("gathered", backend.save_checkpoint_gathered)):
            path = out / f"ckpt-{kind}-{rep}"
            dist.barrier()
            t0 = time.perf_counter()
            save(path, True)
            dist.barrier()
            times[f"{kind}_save"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            backend.load_checkpoint(path, True)
            dist.barrier()
            times[f"{kind}_load"].append(time.perf_counter() - t0)
            if backend.me.rank == 0:
                shutil.rmtree(path)
    return {k: statistics.median(v) for k, v in times.items()}


def old_start(_index: int, model_dir: str, out: str) -> None:
    import torch

    from promptcot_worker.models import load_source

    base = reset_peak()
    load_source(model_dir, 0, torch.float32).model.to(torch.float32)
    (Path(out) / "old-start.json").write_text(json.dumps({"start_added": peak_added(base)}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--experts", type=int, default=48)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--expert-width", type=int, default=256, help="moe_intermediate_size")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128, help="tokens per row (prompt + completion)")
    ap.add_argument("--checkpoints", action="store_true")
    ap.add_argument("--sharded-one", action="store_true", help="1 rank = a one-rank FSDP group, not the single-rank worker")
    ap.add_argument("--no-old-start", action="store_true", help="skip the old whole-model start-up measurement")
    ap.add_argument("--model-dir", help="build the model here (kept) instead of a temp dir; reused when it exists")
    ap.add_argument("--warm-up", action="store_true",
                    help="each rank first starts and steps a few-MB twin of the model, so the baseline holds the runtime")
    ap.add_argument("--json", help="write the figures (params, config.json, every rank's record) to this file")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pcot-sharded-bench-"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    import torch.multiprocessing as mp

    worlds = [int(w) for w in args.ranks.split(",")]
    model = Path(args.model_dir) if args.model_dir else tmp / "model"
    if (model / "config.json").exists():
        config = json.loads((model / "config.json").read_text())
        n_params = config["promptcot_bench_params"]
    else:
        n_params = build_model(model, args.layers, args.experts, args.hidden, args.expert_width)
        config = json.loads((model / "config.json").read_text())
        config["promptcot_bench_params"] = n_params  # transformers ignores unknown keys
        (model / "config.json").write_text(json.dumps(config, indent=2))
    warm_dir = ""
    if args.warm_up:
        warm_dir = str(model) + "-warm"
        if not (Path(warm_dir) / "config.json").exists():
            build_model(Path(warm_dir), 1, 2, hidden=16, expert_width=16, heads=(2, 1, 8))
    full = n_params * 4
    print(f"model: Qwen3-MoE, {n_params / 1e6:.0f}M params, {full / GIB:.2f} GiB in fp32; "
          f"DPO batch {args.pairs} pairs x {args.tokens} tokens, micro_batch_size 1", flush=True)
    old = None
    if not args.no_old_start:
        mp.start_processes(old_start, args=(str(model), str(tmp)), nprocs=1, join=True, start_method="spawn")
        old = json.loads((tmp / "old-start.json").read_text())["start_added"]
        print(f"old start (whole model loaded on each rank): +{old / GIB:.2f} GiB per rank", flush=True)
    ckpt_world = max((w for w in worlds if 1 < w <= 2 or (w == 1 and args.sharded_one)), default=0)
    rows = []
    for world in worlds:
        mp.start_processes(rank_main, args=(world, free_port(), str(model), str(tmp), args.steps, args.pairs,
                                            args.tokens, args.checkpoints and world == ckpt_world, args.sharded_one,
                                            warm_dir),
                           nprocs=world, join=True, start_method="spawn")
        recs = [json.loads((tmp / f"rank-{world}-{r}.json").read_text()) for r in range(world)]
        rows.extend(recs)
        start = max(r["start_added"] for r in recs)
        anon = max(r["start_anon"] for r in recs)
        step = max(r["step_added"] for r in recs)
        resident = max(r["start_resident"] + r["step_added"] for r in recs)
        local = max(r["local_params"] for r in recs) * 4
        secs = statistics.median(r["step_seconds"] for r in recs)
        print(f"ranks {world} ({recs[0]['backend']}): per-rank max  start peak +{start / GIB:.2f} GiB "
              f"({start / full:.2f} x full), anonymous after start +{anon / GIB:.2f} GiB ({anon / full:.2f} x full)  "
              f"step +{step / GIB:.2f} GiB  step peak over the baseline {resident / GIB:.2f} GiB "
              f"(full/N = {full / world / GIB:.2f}, 4 x full/N = {4 * local / GIB:.2f})  step {secs:.2f} s",
              flush=True)
        for r in recs:
            if "dcp_save" in r:
                print(f"  rank {r['rank']} checkpoint (median of 2): save dcp {r['dcp_save']:.2f} s vs gathered "
                      f"{r['gathered_save']:.2f} s; load dcp {r['dcp_load']:.2f} s vs gathered "
                      f"{r['gathered_load']:.2f} s", flush=True)
    result = {"params": n_params, "full_bytes": full, "old_start_added": old, "config": config, "ranks": rows,
              "pairs": args.pairs, "tokens": args.tokens, "steps": args.steps}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
