"""One short run on a CUDA machine: a toy Qwen3-MoE (the 30B-A3B architecture at toy size: 2 layers, 8 experts,
top-2) in bf16 with fp32 master weights, through the worker's own backend: generate, a DPO step, a GRPO step
(behaviour log-probs scored at the sampling temperature), a checkpoint save/load round-trip. Prints a report.

    python python-workers/tests/gpu/check_cuda.py          # CUDA, bf16
    python python-workers/tests/gpu/check_cuda.py --cpu    # the same checks on CPU in fp32 (proves the script)

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
    }
    report += [f"{'ok  ' if ok else 'FAIL'} {name}" for name, ok in checks.items()]
    print("\n".join(report))
    return 0 if all(checks.values()) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run the same checks on CPU in float32")
    args = ap.parse_args(argv)
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
