"""One short run on a CUDA machine: a toy Qwen3-MoE (the 30B-A3B architecture at toy size: 2 layers, 8 experts,
top-2) in bf16 with fp32 master weights, through the worker's own backend: generate, a DPO step, a GRPO step
(behaviour log-probs scored at the sampling temperature), a checkpoint save/load round-trip, a DPO step with pairs in
two passes against one (train.dpo_pair_passes). Prints a report.

    python python-workers/tests/gpu/check_cuda.py          # CUDA, bf16
    python python-workers/tests/gpu/check_cuda.py --cpu    # the same checks on CPU in fp32 (proves the script)
    python python-workers/tests/gpu/check_cuda.py --sharded N         # FSDP2 over NCCL, N ranks = N GPUs, bf16
    python python-workers/tests/gpu/check_cuda.py --sharded 2 --cpu   # the same over gloo on CPU in fp32

--sharded: the toy MoE is written as an HF directory and every rank starts from it through the trainer's own
ShardedBackend (meta device, fully_shard, each rank reads its rows), with the full-logits path disabled (a
call raises), so scoring, a DPO step and a GRPO step at temperature 0.7 all use the chunked head; then a DCP
checkpoint round trip (save, one more step, load: every local shard back bit for bit). Each rank reports its
peak memory (CUDA: max_memory_allocated) against the plan for its shards: 16 bytes per local parameter (fp32
weights, gradients, two AdamW moments) plus the largest gathered unit.

Exit status 0 only when every check passed; 2 when there is no CUDA device (and no --cpu).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # python-workers
sys.path.insert(0, str(HERE.parent))  # python-workers/tests (moe_fixture)

import torch  # noqa: E402

from moe_fixture import tiny_qwen3_moe  # noqa: E402
from promptcot_worker.backend_transformers import TransformersBackend  # noqa: E402
from promptcot_worker.sampling import SamplingConfig  # noqa: E402
from promptcot_worker.schema import Example, Hyper, LossKind  # noqa: E402

PROMPT = [5, 6, 7, 8, 9, 10]


def timed(report: list[str], name: str, fn: Callable[[], Any], device: torch.device) -> Any:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        mem = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB peak"
    else:
        mem = "n/a on CPU"
    report.append(f"{name:<12} {time.perf_counter() - t0:7.2f} s   {mem}")
    return out


def backend_for(device: torch.device, dtype: torch.dtype) -> TransformersBackend:
    return TransformersBackend(tiny_qwen3_moe(dtype), device, "tiny-random-qwen3-moe", decode_width=4)


def generate(b: TransformersBackend) -> list[Any]:
    cfg = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_tokens=16, stop=(), min_p=0.0, repetition_penalty=1.0)
    return list(b.generate(PROMPT, [1, 2, 3, 4], cfg, True, lambda: False))


def dpo_examples(b: TransformersBackend, samples: list[Any]) -> list[Example]:
    pairs = [(samples[0].token_ids, samples[1].token_ids), (samples[2].token_ids, samples[3].token_ids)]
    ref = b.score([(PROMPT, c) for c, _ in pairs] + [(PROMPT, r) for _, r in pairs], want_tokens=False)
    return [Example(prompt=PROMPT, chosen=c, rejected=r, ref_chosen_logp=ref[i].sum_logprob,
                    ref_rejected_logp=ref[2 + i].sum_logprob) for i, (c, r) in enumerate(pairs)]


def grpo_examples(b: TransformersBackend, samples: list[Any]) -> list[Example]:
    old = b.score([(PROMPT, s.token_ids) for s in samples], want_tokens=True, temperature=1.0)
    adv = [1.0, -1.0, 0.5, -0.5]
    return [Example(prompt=PROMPT, completion=s.token_ids, advantage=a, old_logprobs=o.token_logprobs)
            for s, a, o in zip(samples, adv, old)]


def round_trip(b: TransformersBackend, device: torch.device, dtype: torch.dtype, tmp: Path) -> float:
    """Max |difference| of every parameter and of the fp32 masters after save → load into a fresh backend."""
    b.save_checkpoint(tmp / "ckpt", include_optimizer=True)
    fresh = backend_for(device, dtype)
    fresh.load_checkpoint(tmp / "ckpt", load_optimizer=True)
    live, back = dict(b.model.named_parameters()), dict(fresh.model.named_parameters())
    diff = max(float((live[n].detach().float() - back[n].detach().float()).abs().max()) for n in live)
    if b.master is not None and b.master.separate:
        mine, theirs = b.master.state_dict(), fresh.master.state_dict()
        diff = max(diff, max(float((mine[n] - theirs[n]).abs().max()) for n in mine))
    return diff


def pair_passes(device: torch.device, dtype: torch.dtype, samples: list[Any], report: list[str]) -> bool:
    """The same DPO step with pairs in one pass and in two (train.dpo_pair_passes), each on a fresh backend with the
    router term off (split takes it per pass, so only then are the two gradients the same function); step 0 is at
    policy == reference, so the grad norm is what tells them apart. bf16 rounds the two batch shapes differently:
    within 2% relative."""
    norms = {}
    for passes in ("joint", "split"):
        torch.manual_seed(0)
        loaded = tiny_qwen3_moe(dtype)
        loaded.model.config.router_aux_loss_coef = 0.0
        b = TransformersBackend(loaded, device, "tiny-random-qwen3-moe", decode_width=4)
        hyper = Hyper(learning_rate=1e-3, beta=0.1, max_grad_norm=1.0, dpo_pair_passes=passes)
        examples = dpo_examples(b, samples)
        m = timed(report, f"dpo {passes}", lambda: b.train_step("pairs", LossKind.DPO, examples, hyper), device)
        norms[passes] = m["grad_norm"]
    report.append(f"pair passes  grad_norm joint {norms['joint']:.5f}, split {norms['split']:.5f}")
    return norms["joint"] > 0 and math.isclose(norms["split"], norms["joint"], rel_tol=2e-2)


def run(device: torch.device, dtype: torch.dtype) -> int:
    report = [f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
              f"dtype {str(dtype).removeprefix('torch.')}, torch {torch.__version__}"]
    torch.manual_seed(0)
    b = timed(report, "load", lambda: backend_for(device, dtype), device)
    info = b.info()
    report.append(f"model        {info['num_parameters']:,} params, 8 experts top-2, router_aux_loss_coef "
                  f"{b.model.config.router_aux_loss_coef}")
    samples = timed(report, "generate", lambda: generate(b), device)
    hyper = Hyper(learning_rate=1e-3, beta=0.1, max_grad_norm=1.0)
    dpo = timed(report, "dpo step", lambda: b.train_step("dpo-0", LossKind.DPO, dpo_examples(b, samples), hyper), device)
    grpo = timed(report, "grpo step", lambda: b.train_step("grpo-0", LossKind.GRPO, grpo_examples(b, samples), hyper), device)
    with tempfile.TemporaryDirectory() as tmp:
        diff = timed(report, "round trip", lambda: round_trip(b, device, dtype, Path(tmp)), device)
    split_ok = pair_passes(device, dtype, samples, report)
    report.append(f"samples      {[len(s.token_ids) for s in samples]} tokens")
    for name, m in (("dpo", dpo), ("grpo", grpo)):
        report.append(f"{name:<12} loss {m['loss']:.5f}  router_aux {m.get('router_aux_loss', float('nan')):.5f}  "
                      f"grad_norm {m['grad_norm']:.4f}")
    report.append(f"round trip   max |diff| {diff:.3g}")
    checks = {
        "generated 4 samples": len(samples) == 4 and all(s.token_ids for s in samples),
        "dpo loss = log 2 + router term at step 0": math.isclose(dpo["loss"], math.log(2) + dpo.get("router_aux_loss", -1), abs_tol=2e-2),
        "router term present": dpo.get("router_aux_loss", 0) > 0 and grpo.get("router_aux_loss", 0) > 0,
        "finite grpo step": math.isfinite(grpo["loss"]) and math.isfinite(grpo["grad_norm"]),
        "checkpoint round trip exact": diff == 0.0,
        "dpo pairs in two passes: the one-pass gradient": split_ok,
    }
    report += [f"{'ok  ' if ok else 'FAIL'} {name}" for name, ok in checks.items()]
    print("\n".join(report))
    return 0 if all(checks.values()) else 1


def sharded_rank(rank: int, world: int, port: int, model_dir: str, use_cpu: bool, out: str) -> None:
    """One rank of the --sharded check; writes its report lines and verdicts to out/rank-R.json."""
    import json
    import os

    import torch.distributed as dist

    from promptcot_worker import backend_transformers
    from promptcot_worker.sharded import Rank, ShardedBackend, init_group

    def no_full_logits(*_: Any, **__: Any) -> None:
        raise AssertionError("the full-logits path was taken on a sharded rank")

    backend_transformers.completion_logits = no_full_logits
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = torch.device("cpu") if use_cpu else torch.device(f"cuda:{rank}")
    dtype = torch.float32 if use_cpu else torch.bfloat16
    me = Rank(rank, world)
    init_group(me, device)
    report: list[str] = []
    b = timed(report, "start", lambda: ShardedBackend.start(model_dir, 0, device, me, dtype, decode_width=4), device)
    local = sum(p.to_local().numel() for p in b.model.parameters())
    whole = sum(p.numel() for p in b.model.parameters())
    samples = timed(report, "generate", lambda: generate(b), device)
    hyper = Hyper(learning_rate=1e-3, beta=0.1, max_grad_norm=1.0)
    dpo = timed(report, "dpo step", lambda: b.train_step("dpo-0", LossKind.DPO, dpo_examples(b, samples), hyper), device)
    hot = Hyper(learning_rate=1e-3, max_grad_norm=1.0, logit_temperature=0.7)
    grpo = timed(report, "grpo T=0.7", lambda: b.train_step("grpo-0", LossKind.GRPO, grpo_examples(b, samples), hot), device)
    with tempfile.TemporaryDirectory() as tmp:
        box = [tmp]
        dist.broadcast_object_list(box, src=0)  # one directory for all ranks (same host)
        saved = {n: p.to_local().detach().clone() for n, p in b.model.named_parameters()}

        def trip() -> float:
            b.save_checkpoint(Path(box[0]) / "ckpt", include_optimizer=True)
            b.train_step("dpo-1", LossKind.DPO, dpo_examples(b, samples), hyper)
            b.load_checkpoint(Path(box[0]) / "ckpt", load_optimizer=True)
            back = dict(b.model.named_parameters())
            return max(float((saved[n].float() - back[n].to_local().detach().float()).abs().max()) for n in saved)

        diff = timed(report, "dcp trip", trip, device)
        dist.barrier()
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        plan = 16 * local + max(p.numel() for p in b.model.parameters()) * dtype.itemsize
        report.append(f"peak         {peak / 2**20:.0f} MiB allocated vs plan {plan / 2**20:.0f} MiB "
                      f"(16 B x {local:,} local params + largest gathered tensor)")
    checks = {
        "rank holds only its shards": local <= whole // world + whole // 10 if world > 1 else local == whole,
        "dpo loss = log 2 + router term at step 0": math.isclose(dpo["loss"], math.log(2) + dpo.get("router_aux_loss", -1), abs_tol=2e-2),
        "finite grpo step at T=0.7 (chunked head)": math.isfinite(grpo["loss"]) and math.isfinite(grpo["grad_norm"]),
        "dcp round trip exact": diff == 0.0,
    }
    report += [f"{'ok  ' if ok else 'FAIL'} {name}" for name, ok in checks.items()]
    Path(out, f"rank-{rank}.json").write_text(json.dumps({"report": report, "ok": all(checks.values())}))
    dist.destroy_process_group()


def run_sharded(world: int, use_cpu: bool) -> int:
    import json
    import socket

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        toy = tiny_qwen3_moe(torch.float32)
        toy.model.save_pretrained(f"{tmp}/model")
        toy.tokenizer.save_pretrained(f"{tmp}/model")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.start_processes(sharded_rank, args=(world, port, f"{tmp}/model", use_cpu, tmp), nprocs=world, join=True,
                           start_method="spawn")
        ok = True
        for r in range(world):
            got = json.loads(Path(tmp, f"rank-{r}.json").read_text())
            print(f"--- rank {r}/{world} ({'gloo, cpu, fp32' if use_cpu else 'nccl, cuda, bf16'})")
            print("\n".join(got["report"]))
            ok = ok and got["ok"]
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run the same checks on CPU in float32")
    ap.add_argument("--sharded", type=int, default=0, metavar="N", help="the FSDP2 check with N ranks (one GPU each)")
    args = ap.parse_args(argv)
    if args.sharded:
        if not args.cpu and torch.cuda.device_count() < args.sharded:
            print(f"--sharded {args.sharded} needs {args.sharded} CUDA devices, {torch.cuda.device_count()} visible "
                  "(NCCL puts one rank on each GPU); add --cpu to run it over gloo", file=sys.stderr)
            return 2
        if args.cpu:
            torch.set_num_threads(1)
        return run_sharded(args.sharded, args.cpu)
    if args.cpu:
        torch.set_num_threads(2)
        return run(torch.device("cpu"), torch.float32)
    if not torch.cuda.is_available():
        print("no CUDA device visible (torch.cuda.is_available() is False): this check needs a GPU; "
              "run with --cpu to exercise the same code paths on CPU in float32", file=sys.stderr)
        return 2
    return run(torch.device("cuda:0"), torch.bfloat16)


if __name__ == "__main__":
    sys.exit(main())
