"""DPO pairs in two passes (train.dpo_pair_passes: split) against one joint pass, on a tiny random llama in float32.

Split mode runs a pair's chosen and rejected sequences in separate forwards/backwards, with the loss's
derivative in each side's summed log-prob carried from one pass to the other (backend_transformers
_dpo_split_passes). The gradient is the joint one exactly in real arithmetic; what differs is float32
rounding, because the chosen rows and the rejected rows are batched (and padded) apart instead of together:
- metrics (loss, rewards, margin, grad norm): relative 1e-5 (each sum is over tens of tokens of float32
  log-probs whose matmuls round differently under another batch shape: ~1e-7 relative per value);
- parameters after one AdamW step at lr 1e-3: absolute 5e-5. Adam's first step moves each weight by about
  lr * g / (|g| + eps), so a rounding difference matters only in gradients near zero, where it can move a
  weight by up to lr; the step itself moves weights by ~1e-3, which the test checks, so the bound is not vacuous.
Measured on this CPU (one run each, label_smoothing 0 / 0.2): metrics within 2.4e-6 relative, weights within
6.0e-6 / 1.0e-5 absolute, against a step of 1.0e-3.
The sharded case (2 gloo ranks, FSDP2) compares with the single-rank joint step under the same tolerances
(tests/test_sharded_trainer.py explains why ranks round differently again).
"""

from __future__ import annotations

import functools
import os
import random
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
import torch.multiprocessing as mp
from torch.autograd.graph import saved_tensors_hooks

from promptcot_worker.backend_transformers import TransformersBackend
from promptcot_worker.models import load_source
from promptcot_worker.schema import Example, Hyper, LossKind

MODEL = "tiny-random-llama"
RTOL = 1e-5
WEIGHT_ATOL = 5e-5
METRICS = ("loss", "grad_norm", "tokens", "micro_batches", "rewards/chosen", "rewards/rejected", "rewards/margin",
           "rewards/accuracy", "rewards/abs_max")


def _backend(cls: type = TransformersBackend, **kwargs: Any) -> TransformersBackend:
    torch.manual_seed(0)
    return cls(load_source(MODEL, 0, torch.float32), torch.device("cpu"), MODEL, **kwargs)


@functools.lru_cache(maxsize=None)
def _pairs(n: int = 5) -> list[Example]:
    """Pairs of unequal lengths (padding in both modes), weights other than 1, and reference log-probs off the
    policy's (so the loss is not at log 2 and the pairs disagree in sign)."""
    rng = random.Random(11)
    tok = lambda k: [rng.randrange(3, 2000) for _ in range(k)]  # noqa: E731
    raw = [(tok(4 + i % 3), tok(3 + 2 * i), tok(9 - i)) for i in range(n)]
    ref = _backend().score([(p, c) for p, c, _ in raw] + [(p, r) for p, _, r in raw], want_tokens=False)
    return [Example(prompt=p, chosen=c, rejected=r, weight=(0.5, 1.0, 2.0)[i % 3],
                    ref_chosen_logp=ref[i].sum_logprob + (0.3 if i % 2 else -0.4),
                    ref_rejected_logp=ref[n + i].sum_logprob - 0.2)
            for i, (p, c, r) in enumerate(raw)]


def _hyper(passes: str, **kw: Any) -> Hyper:
    return Hyper(**{"learning_rate": 1e-3, "beta": 0.5, "micro_batch_size": 2, "max_grad_norm": 1.0,
                    "dpo_pair_passes": passes, **kw})


def _params(backend: TransformersBackend) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in backend.model.named_parameters()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _assert_metrics_match(got: dict[str, float], want: dict[str, float]) -> None:
    for key in METRICS:
        assert got[key] == pytest.approx(want[key], rel=RTOL, abs=1e-9), key


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_split_step_equals_joint_step(label_smoothing: float) -> None:
    examples = _pairs()
    before = _params(_backend())
    results = {}
    for passes in ("joint", "split"):
        backend = _backend()
        metrics = backend.train_step("s", LossKind.DPO, examples, _hyper(passes, label_smoothing=label_smoothing))
        results[passes] = (metrics, _params(backend))
    (joint, joint_w), (split, split_w) = results["joint"], results["split"]
    _assert_metrics_match(split, joint)
    assert joint["micro_batches"] == 3 and 0 < joint["rewards/accuracy"] < 1  # several pairs per micro, mixed signs
    assert _max_diff(split_w, joint_w) < WEIGHT_ATOL
    assert _max_diff(joint_w, before) > 10 * WEIGHT_ATOL  # the step moved the weights: the bound is not vacuous


def test_split_without_its_chosen_pass_would_differ() -> None:
    """The chosen side's surrogate pass carries half the gradient: dropping it must show (the test can fail)."""
    class NoChosenPass(TransformersBackend):
        def _dpo_split_passes(self, *args: Any) -> Iterator[tuple[torch.Tensor, float]]:
            yield next(super()._dpo_split_passes(*args))

    examples = _pairs()
    joint = _backend().train_step("s", LossKind.DPO, examples, _hyper("joint"))
    broken = _backend(NoChosenPass).train_step("s", LossKind.DPO, examples, _hyper("split"))
    assert broken["loss"] == pytest.approx(joint["loss"], rel=RTOL)  # pass 1's loss is the true one...
    assert abs(broken["grad_norm"] - joint["grad_norm"]) > 1e-3 * joint["grad_norm"]  # ...not its gradient


def test_unknown_pair_passes_is_refused() -> None:
    with pytest.raises(ValueError, match="dpo_pair_passes must be one of joint, split"):
        _backend().train_step("s", LossKind.DPO, _pairs(2), _hyper("halves"))


def test_split_token_cap_counts_a_pair_as_one_row() -> None:
    """max_tokens_per_micro_batch bounds one pass's padded tokens: a split pair is one row per pass, so the same
    cap fits twice the pairs of the joint mode (2 rows per pair)."""
    examples = [Example(prompt=[5, 6], chosen=[7] * 8, rejected=[8] * 6, ref_chosen_logp=-9.0, ref_rejected_logp=-9.0)
                for _ in range(4)]
    cap = 40  # 10 tokens per row: joint 2 pairs (4 rows), split 4 pairs
    counts = {p: _backend().train_step("s", LossKind.DPO, examples, _hyper(p, max_tokens_per_micro_batch=cap,
                                                                             micro_batch_size=0))["micro_batches"]
              for p in ("joint", "split")}
    assert counts == {"joint": 2.0, "split": 1.0}


class _SavedBytes(TransformersBackend):
    """Records, per backward pass, the bytes its forward saved for backward (the activations held at its peak;
    the weights, which matmuls save too, are not counted)."""

    saved: list[int]

    def _micro_passes(self, *args: Any) -> Iterator[tuple[torch.Tensor, float]]:
        passes = super()._micro_passes(*args)
        weights = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        while True:
            total = [0]

            def pack(t: torch.Tensor) -> torch.Tensor:
                if t.untyped_storage().data_ptr() not in weights:
                    total[0] += t.numel() * t.element_size()
                return t

            with saved_tensors_hooks(pack, lambda t: t):
                item = next(passes, None)
            if item is None:
                return
            self.saved.append(total[0])
            yield item


def test_split_holds_half_the_activations() -> None:
    """One pair of equal lengths: each split pass saves about half of what the joint pass saves (measured: 77,000 and
    76,968 bytes against 153,956 with the worker's checkpointed blocks; 669,000 against 1,312,356 without)."""
    example = [Example(prompt=list(range(3, 13)), chosen=list(range(20, 60)), rejected=list(range(70, 110)),
                       ref_chosen_logp=-300.0, ref_rejected_logp=-300.0)]
    saved = {}
    for passes in ("joint", "split"):
        backend = _backend(_SavedBytes)
        backend.saved = []
        backend.train_step("s", LossKind.DPO, example, _hyper(passes))
        saved[passes] = backend.saved
    assert len(saved["joint"]) == 1 and len(saved["split"]) == 2
    assert max(saved["split"]) < 0.55 * saved["joint"][0]


# ---- two FSDP2 ranks (gloo) -------------------------------------------------------------------------------

def _rank_main(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from promptcot_worker.sharded import Rank, ShardedBackend, init_group

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    me = Rank(rank, world)
    init_group(me, torch.device("cpu"))
    torch.manual_seed(0)
    backend = ShardedBackend.start(MODEL, 0, torch.device("cpu"), me, torch.float32)
    metrics = backend.train_step("s", LossKind.DPO, _pairs(), _hyper("split"))
    full = {n: p.full_tensor().detach().clone() for n, p in backend.model.named_parameters()}
    if rank == 0:
        torch.save({"metrics": metrics, "params": full}, Path(out) / "split.pt")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_sharded_ranks_split_equal_single_rank_joint(tmp_path: Path) -> None:
    """5 pairs, micro batches of 2: one rank gets 3 pairs (2 micro batches), the other 2 (1 micro batch and a
    zero-weighted filler), so the filler must run split's passes too or the collectives would hang."""
    torch.set_num_threads(1)
    joint_backend = _backend()
    joint = joint_backend.train_step("s", LossKind.DPO, _pairs(), _hyper("joint"))
    mp.start_processes(_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    got = torch.load(tmp_path / "split.pt")
    _assert_metrics_match(got["metrics"], joint)
    assert _max_diff(got["params"], _params(joint_backend)) < WEIGHT_ATOL


def test_the_wire_carries_the_mode() -> None:
    """TrainHyper.dpo_pair_passes reaches the backend's Hyper; "" (an older controller) is joint."""
    from promptcot_worker.gen import promptcot_worker_pb2 as pb
    from promptcot_worker.server import _hyper as wire_hyper

    assert wire_hyper(pb.TrainHyper(learning_rate=1e-3, dpo_pair_passes="split")).dpo_pair_passes == "split"
    assert wire_hyper(pb.TrainHyper(learning_rate=1e-3)).dpo_pair_passes == "joint"


def test_split_moe_takes_the_router_term_per_pass() -> None:
    """A MoE model in split mode: the load-balancing term is each pass's own (chosen rows, rejected rows), each with
    half the micro batch's share, as documented; the DPO part is still log 2 at policy == reference."""
    import math
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from moe_fixture import tiny_qwen3_moe
    from promptcot_worker.batch import build_batch

    torch.set_num_threads(1)
    backend = TransformersBackend(tiny_qwen3_moe(), torch.device("cpu"), "moe")
    rng = random.Random(5)
    raw = [([rng.randrange(3, 2000) for _ in range(5)], [rng.randrange(3, 2000) for _ in range(3 + i)],
            [rng.randrange(3, 2000) for _ in range(2 + i)]) for i in range(3)]
    ref = backend.score([(p, c) for p, c, _ in raw] + [(p, r) for p, _, r in raw], want_tokens=False)
    examples = [Example(prompt=p, chosen=c, rejected=r, ref_chosen_logp=ref[i].sum_logprob,
                        ref_rejected_logp=ref[3 + i].sum_logprob) for i, (p, c, r) in enumerate(raw)]
    coef = backend.model.config.router_aux_loss_coef
    aux = []
    for side in ("chosen", "rejected"):
        batch = build_batch([(e.prompt, getattr(e, side)) for e in examples], backend.pad_id, backend.device)
        with torch.no_grad():
            out = backend.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                output_router_logits=True)
        aux.append(coef * float(out.aux_loss))
    metrics = backend.train_step("s", LossKind.DPO, examples, Hyper(learning_rate=1e-3, beta=0.1,
                                                                      dpo_pair_passes="split"))
    assert metrics["router_aux_loss"] == pytest.approx(sum(aux) / 2, rel=1e-5)
    assert metrics["loss"] == pytest.approx(math.log(2) + sum(aux) / 2, abs=1e-6)


def test_over_grpc_split_trains_and_an_unknown_mode_is_invalid_argument(tiny_worker: Any) -> None:
    """A real worker process: TrainStep with dpo_pair_passes "split" takes a DPO step (the weights version moves)
    and reports the step's metrics; "halves" is INVALID_ARGUMENT naming the field, and moves nothing."""
    import grpc

    from promptcot_worker.gen import promptcot_worker_pb2 as pb

    examples = [pb.TrainExample(prompt_token_ids=e.prompt, chosen_token_ids=e.chosen, rejected_token_ids=e.rejected,
                                ref_chosen_logp=e.ref_chosen_logp, ref_rejected_logp=e.ref_rejected_logp)
                for e in _pairs(3)]

    def step(step_id: str, passes: str) -> Any:
        hyper = pb.TrainHyper(learning_rate=1e-3, beta=0.5, micro_batch_size=2, dpo_pair_passes=passes)
        return tiny_worker.stub.TrainStep(pb.TrainStepRequest(step_id=step_id, loss=pb.DPO, examples=examples,
                                                              hyper=hyper), timeout=120)

    version = tiny_worker.stub.Info(pb.InfoRequest()).weights_version
    with pytest.raises(grpc.RpcError) as err:
        step("bad", "halves")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "dpo_pair_passes" in err.value.details()
    assert tiny_worker.stub.Info(pb.InfoRequest()).weights_version == version
    done = step("split", "split")
    assert done.weights_version == version + 1
    assert done.metrics["micro_batches"] == 2 and done.metrics["grad_norm"] > 0 and "rewards/margin" in done.metrics
