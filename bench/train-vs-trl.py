"""Our worker's training path against TRL, side by side in one process, on one model, batch and data.

    PY=$(bash bench/setup-trl-venv.sh)
    PYTHONPATH=python-workers $PY bench/train-vs-trl.py [--model smollm2-135m-instruct] [--repeats 5]

What is timed (wall clock, medians over --repeats after --warmup untimed steps, interleaved ours/TRL so that
the shared machine's noise falls on both alike):
- DPO: TRL's DPOTrainer.train() runs one optimizer step per epoch on the batch; a callback times each step
  from on_step_begin to on_step_end (forward of chosen+rejected, sigmoid DPO loss, backward, grad clip,
  AdamW, scheduler) and, right after, times one TransformersBackend.train_step (our worker's TrainStep body)
  on the same token ids. Reference log-probs are precomputed on both sides (TRL: precompute_ref_log_probs;
  ours: the controller scores them before the update), so neither step holds a reference forward.
- GRPO: TRL's GRPOTrainer needs its own generation to run train(), so its step is timed as
  GRPOTrainer.compute_loss (its fused-LM-head forward at the sampling temperature + the clipped "dapo"
  token-level loss) + backward + grad clip + the Trainer's own optimizer step; ours is one
  TransformersBackend.train_step with loss GRPO. Same completions, advantages and behaviour log-probs.
- Weight sync: LoadCheckpoint over gRPC on a second, real worker process (a rollout worker) of the
  checkpoint our trainer saved. Checkpoint save/load: our trainer's save_checkpoint/load_checkpoint with
  optimizer state.
Correctness: both sides start from the same weights and see the same batch every step, so their losses
must agree step by step (the first DPO step is log 2 on both sides; later steps also check that the two
updates are the same). The table prints the largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from promptcot_worker.backend_transformers import TransformersBackend, freeze_all_but_last
from promptcot_worker.models import load_source
from promptcot_worker.schema import Example, Hyper, LossKind

WORDS = ("the sum of and is we add carry then so answer first next digit total result step check value "
         "number plus times minus half twice more less equal gives boxed final").split()


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="a worker --model value")
    ap.add_argument("--trainable-layers", type=int, default=8, help="as configs/models/smollm2-135m-cpu.yaml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per side")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    ap.add_argument("--pairs", type=int, default=4, help="DPO pairs per step")
    ap.add_argument("--groups", type=int, default=2, help="GRPO prompts per step")
    ap.add_argument("--group-size", type=int, default=4, help="GRPO samples per prompt")
    ap.add_argument("--prompt-words", type=int, default=32)
    ap.add_argument("--completion-words", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--temperature", type=float, default=0.8, help="GRPO sampling temperature")
    ap.add_argument("--sync-repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write every figure here")
    return ap.parse_args()


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) if rng.random() < 0.8 else str(rng.randrange(1000)) for _ in range(n))


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def load_policy(args: argparse.Namespace) -> Any:
    """The model exactly as the worker loads it (SmolLM2: the quickstart GGUF converted to a cached HF dir)."""
    return load_source(args.model, 0, torch.float32)


def our_backend(args: argparse.Namespace) -> TransformersBackend:
    return TransformersBackend(load_policy(args), torch.device("cpu"), args.model, args.trainable_layers, decode_width=4)


def trl_model(args: argparse.Namespace) -> tuple[Any, Any]:
    loaded = load_policy(args)
    freeze_all_but_last(loaded.model, args.trainable_layers)  # the same trainable set as ours
    return loaded.model, loaded.tokenizer


def trl_common(out: Path, args: argparse.Namespace, steps: int) -> dict[str, Any]:
    """TrainingArguments both TRL trainers share: fp32 on CPU, constant lr, AdamW with ours' settings."""
    return dict(output_dir=str(out), use_cpu=True, bf16=False, gradient_checkpointing=True, learning_rate=args.lr,
                lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
                adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, report_to=[], save_strategy="no",
                logging_steps=1, disable_tqdm=True, seed=0, dataloader_num_workers=0, max_steps=steps)


# ---- DPO ------------------------------------------------------------------------------------------


def bench_dpo(args: argparse.Namespace, ours: TransformersBackend, work: Path) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    rng = random.Random(1)
    rows = [{"prompt": text(rng, args.prompt_words) + " Answer:",
             "chosen": " " + text(rng, args.completion_words), "rejected": " " + text(rng, args.completion_words)}
            for _ in range(args.pairs)]
    model, tok = trl_model(args)
    steps = args.warmup + args.repeats
    cfg = DPOConfig(**trl_common(work / "trl-dpo", args, steps), per_device_train_batch_size=args.pairs,
                    precompute_ref_log_probs=True, beta=0.1, loss_type=["sigmoid"], max_length=None)

    class ProbedDPO(DPOTrainer):
        """TRL's DPOTrainer, unchanged, with its step losses recorded at full precision."""

        losses: list[float] = []

        def compute_loss(self, *a: Any, **kw: Any) -> Any:
            loss = super().compute_loss(*a, **kw)
            self.losses.append(float(loss.detach()))
            return loss

    trainer = ProbedDPO(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok)
    # TRL's own tokenization (EOS appended to completions), so our worker trains on exactly TRL's token ids.
    data = list(trainer.train_dataset)
    pairs = [(r["prompt_ids"], r["chosen_ids"]) for r in data] + [(r["prompt_ids"], r["rejected_ids"]) for r in data]
    refs = ours.score(pairs, want_tokens=False)
    n = len(data)
    examples = [Example(prompt=r["prompt_ids"], chosen=r["chosen_ids"], rejected=r["rejected_ids"],
                        ref_chosen_logp=refs[i].sum_logprob, ref_rejected_logp=refs[n + i].sum_logprob)
                for i, r in enumerate(data)]
    hyper = Hyper(learning_rate=args.lr, beta=0.1, micro_batch_size=0, max_grad_norm=1.0)
    tokens = sum(len(p) + len(c) for p, c in pairs)
    ours_t: list[tuple[float, float]] = []
    ours_loss: list[float] = []
    trl_t: list[tuple[float, float]] = []

    class Interleave(TrainerCallback):
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self.t0 = clock()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            trl_t.append(since(self.t0))
            t0 = clock()
            m = ours.train_step(f"dpo-{len(ours_t)}", LossKind.DPO, examples, hyper)
            ours_t.append(since(t0))
            ours_loss.append(m["loss"])

    trainer.add_callback(Interleave())
    trainer.train()
    return summarize("DPO", tokens, ours_t, trl_t, ours_loss, ProbedDPO.losses, args.warmup,
                     f"{n} pairs, {tokens} tokens/step (prompt+chosen and prompt+rejected rows)")


# ---- GRPO -----------------------------------------------------------------------------------------


def grpo_batch(args: argparse.Namespace, ours: TransformersBackend, tok: Any) -> tuple[list[Example], dict[str, Any]]:
    """Same completions, advantages (group mean/std of fake rewards) and behaviour log-probs for both sides.
    The behaviour log-probs are the start policy's at the sampling temperature plus fixed noise, so the
    ratio is not 1 and clipping acts in the loss both sides must agree on."""
    rng = random.Random(2)
    gen = torch.Generator().manual_seed(3)
    prompts, comps, advs = [], [], []
    for _ in range(args.groups):
        p = tok(text(rng, args.prompt_words) + " Answer:")["input_ids"]
        rewards = [float(rng.random() < 0.5) for _ in range(args.group_size)]
        rewards[0], rewards[-1] = 1.0, 0.0  # every group carries signal
        mean, std = statistics.mean(rewards), statistics.stdev(rewards)
        for r in rewards:
            prompts.append(p)
            comps.append(tok(" " + text(rng, rng.randint(args.completion_words // 2, args.completion_words)),
                             add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
            advs.append((r - mean) / (std + 1e-6))
    scored = ours.score(list(zip(prompts, comps)), want_tokens=True, temperature=args.temperature)
    old = [[v + 0.3 * float(torch.randn(1, generator=gen)) for v in s.token_logprobs] for s in scored]
    examples = [Example(prompt=p, completion=c, advantage=a, old_logprobs=o)
                for p, c, a, o in zip(prompts, comps, advs, old)]
    return examples, trl_inputs(examples, tok.pad_token_id)


def trl_inputs(examples: list[Example], pad: int) -> dict[str, Any]:
    """The batch dict GRPOTrainer.compute_loss reads (left-padded prompts, right-padded completions)."""
    pw = max(len(e.prompt) for e in examples)
    cw = max(len(e.completion) for e in examples)

    def rows(seqs: list[list[Any]], width: int, fill: Any, left: bool) -> torch.Tensor:
        return torch.tensor([[fill] * (width - len(s)) + s if left else s + [fill] * (width - len(s)) for s in seqs])

    return {
        "prompt_ids": rows([e.prompt for e in examples], pw, pad, True),
        "prompt_mask": rows([[1] * len(e.prompt) for e in examples], pw, 0, True),
        "completion_ids": rows([e.completion for e in examples], cw, pad, False),
        "completion_mask": rows([[1] * len(e.completion) for e in examples], cw, 0, False),
        "advantages": torch.tensor([e.advantage for e in examples], dtype=torch.float32),
        "old_per_token_logps": rows([e.old_logprobs for e in examples], cw, 0.0, False).float(),
        "num_items_in_batch": torch.tensor(float(sum(len(e.completion) for e in examples))),
    }


def bench_grpo(args: argparse.Namespace, ours: TransformersBackend, work: Path) -> dict[str, Any]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tok = trl_model(args)
    examples, inputs = grpo_batch(args, ours, tok)
    b = len(examples)
    cfg = GRPOConfig(**trl_common(work / "trl-grpo", args, 1), per_device_train_batch_size=b,
                     num_generations=args.group_size, temperature=args.temperature, loss_type="dapo", beta=0.0,
                     epsilon=0.2, epsilon_high=0.28, max_completion_length=max(len(e.completion) for e in examples))
    trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=cfg,
                          train_dataset=Dataset.from_list([{"prompt": "x"}] * b), processing_class=tok)
    # What Trainer.train() would set up before its first step.
    trainer.model.activation_checkpointing_enable(activation_checkpointing_kwargs=None)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    trainer.create_optimizer_and_scheduler(num_training_steps=args.warmup + args.repeats)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    hyper = Hyper(learning_rate=args.lr, micro_batch_size=0, max_grad_norm=1.0, clip_low=0.2, clip_high=0.28,
                  loss_aggregation="token", logit_temperature=args.temperature)
    tokens = sum(len(e.prompt) + len(e.completion) for e in examples)
    ours_t, trl_t, ours_loss, trl_loss = [], [], [], []
    for i in range(args.warmup + args.repeats):
        t0 = clock()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        trl_t.append(since(t0))
        trl_loss.append(float(loss.detach()))
        t0 = clock()
        m = ours.train_step(f"grpo-{i}", LossKind.GRPO, examples, hyper)
        ours_t.append(since(t0))
        ours_loss.append(m["loss"])
    return summarize("GRPO", tokens, ours_t, trl_t, ours_loss, trl_loss, args.warmup,
                     f"{args.groups} prompts x {args.group_size} samples, {tokens} tokens/step, T={args.temperature}")


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(t0: tuple[float, float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) since t0. On a shared machine the wall time
    carries everyone else's load; the CPU time is the work itself."""
    wall, cpu = clock()
    return wall - t0[0], cpu - t0[1]


def summarize(name: str, tokens: int, ours_t: list[tuple[float, float]], trl_t: list[tuple[float, float]],
              ours_loss: list[float], trl_loss: list[float], warmup: int, shape: str) -> dict[str, Any]:
    o, t = [w for w, _ in ours_t[warmup:]], [w for w, _ in trl_t[warmup:]]
    oc, tc = [c for _, c in ours_t[warmup:]], [c for _, c in trl_t[warmup:]]
    n = min(len(ours_loss), len(trl_loss))
    diffs = [abs(a - b) for a, b in zip(ours_loss[:n], trl_loss[:n])]
    return {"name": name, "shape": shape, "tokens": tokens, "ours_s": o, "trl_s": t, "ours_cpu_s": oc, "trl_cpu_s": tc,
            "cpu_ratio": median(tc) / median(oc),
            "ours_tok_s": tokens / median(o), "trl_tok_s": tokens / median(t), "ratio": median(t) / median(o),
            "ours_loss": ours_loss, "trl_loss": trl_loss, "max_loss_diff": max(diffs) if diffs else float("nan"),
            "max_rel_loss_diff": max((d / max(abs(b), 1e-12) for d, b in zip(diffs, trl_loss)), default=float("nan"))}


# ---- checkpoints and weight sync -------------------------------------------------------------------


def bench_checkpoints(args: argparse.Namespace, ours: TransformersBackend, work: Path) -> tuple[dict[str, Any], Path]:
    save_t, load_t, size = [], [], 0
    path = work / "ckpt"
    for i in range(args.sync_repeats):
        shutil.rmtree(path, ignore_errors=True)
        t0 = time.perf_counter()
        size = ours.save_checkpoint(path, include_optimizer=True)
        save_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours.load_checkpoint(path, load_optimizer=True)
        load_t.append(time.perf_counter() - t0)
    return {"save_s": save_t, "load_s": load_t, "bytes": size}, path


def bench_sync(args: argparse.Namespace, ckpt: Path) -> dict[str, Any]:
    """LoadCheckpoint on a second worker: a real gRPC server process, as the controller's weight sync does."""
    import grpc

    from promptcot_worker import auth
    from promptcot_worker.gen import promptcot_worker_pb2 as pb
    from promptcot_worker.gen import promptcot_worker_pb2_grpc as pb_grpc

    secret = secrets.token_hex(32)
    argv = [sys.executable, "-m", "promptcot_worker.server", "--port", "0", "--model", args.model, "--role", "rollout",
            "--trainable-layers", str(args.trainable_layers), "--threads", str(args.threads)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, auth.SECRET_ENV: secret})
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PROMPTCOT_READY "):
            raise RuntimeError(f"sync worker did not start: {line!r}")
        port = json.loads(line.split(" ", 1)[1])["port"]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as raw:
            stub = pb_grpc.WorkerStub(auth.with_secret(raw, secret))
            times, version = [], -1
            for _ in range(args.sync_repeats):
                t0 = time.perf_counter()
                version = stub.LoadCheckpoint(pb.LoadCheckpointRequest(path=str(ckpt)), timeout=600).weights_version
                times.append(time.perf_counter() - t0)
            stub.Shutdown(pb.ShutdownRequest(), timeout=60)
        proc.wait(60)
        return {"sync_s": times, "version": version}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- report ----------------------------------------------------------------------------------------


def table(args: argparse.Namespace, runs: list[dict[str, Any]], ck: dict[str, Any], sync: dict[str, Any]) -> str:
    lines = [f"model: {args.model} (float32, CPU, {args.threads} threads, last {args.trainable_layers} blocks "
             f"trained on both sides, gradient checkpointing on both); {args.repeats} timed steps per side after "
             f"{args.warmup} warm-up, interleaved; medians",
             "", "| measure | ours: wall (tokens/s), CPU s | TRL: wall (tokens/s), CPU s | TRL / ours: wall, CPU "
             "| same loss? max abs / rel diff over all steps |",
             "| --- | --- | --- | --- | --- |"]
    for r in runs:
        lines.append(f"| {r['name']} step ({r['shape']}) | {median(r['ours_s']):.2f} s ({r['ours_tok_s']:.0f} tok/s), "
                     f"{median(r['ours_cpu_s']):.2f} | {median(r['trl_s']):.2f} s ({r['trl_tok_s']:.0f} tok/s), "
                     f"{median(r['trl_cpu_s']):.2f} | {r['ratio']:.2f}x, {r['cpu_ratio']:.2f}x "
                     f"| {r['max_loss_diff']:.2e} / {r['max_rel_loss_diff']:.2e} (step 1: ours {r['ours_loss'][0]:.6f},"
                     f" TRL {r['trl_loss'][0]:.6f}; last: ours {r['ours_loss'][-1]:.6f}, TRL {r['trl_loss'][-1]:.6f}) |")
    mib = ck["bytes"] / 2**20
    lines.append(f"| checkpoint save (weights + fp32 masters + optimizer, {mib:.0f} MiB) | {median(ck['save_s']):.2f} s "
                 f"| | | |")
    lines.append(f"| checkpoint load (with optimizer) | {median(ck['load_s']):.2f} s | | | |")
    lines.append(f"| weight sync: LoadCheckpoint on a second gRPC worker (safetensors hand-off) | "
                 f"{median(sync['sync_s']):.2f} s (confirms version {sync['version']}) | | | |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="promptcot-bench-trl-"))
    try:
        runs = []
        for fn in (bench_dpo, bench_grpo):
            ours = our_backend(args)  # fresh weights and optimizer per algorithm, as TRL's side gets
            runs.append(fn(args, ours, work))
            print(json.dumps({k: v for k, v in runs[-1].items()}), file=sys.stderr, flush=True)
        ck, path = bench_checkpoints(args, ours, work)
        sync = bench_sync(args, path)
        out = table(args, runs, ck, sync)
        print(out)
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                             "checkpoint": ck, "sync": sync}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
