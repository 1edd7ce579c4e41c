"""Two FSDP2 ranks (gloo, CPU) start a toy Qwen3-MoE from an HF directory: the model is built on the meta
device and each rank reads only its rows (whole experts of the fused expert tensors) from the safetensors.
Checked against a single-rank worker on the same directory: scores, a DPO step's loss (tolerances as in
test_sharded_trainer.py), and the HF copy the ranks write together, which transformers loads as it is.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python-workers"))
sys.path.insert(0, str(REPO / "python-workers" / "tests"))

from moe_fixture import tiny_qwen3_moe  # noqa: E402
from promptcot_worker.backend_transformers import TransformersBackend  # noqa: E402
from promptcot_worker.models import load_source  # noqa: E402
from promptcot_worker.schema import Example, Hyper, LossKind  # noqa: E402

ATOL = 1e-5
WEIGHT_ATOL = 5e-5
HYPER = Hyper(learning_rate=1e-3, beta=0.1, micro_batch_size=1, max_grad_norm=1.0)


def _items() -> list[tuple[list[int], list[int]]]:
    rng = random.Random(5)
    return [([rng.randrange(3, 2000) for _ in range(4)], [rng.randrange(3, 2000) for _ in range(2 + i)]) for i in range(6)]


def _examples(scores: list[float]) -> list[Example]:
    items = _items()
    return [Example(prompt=items[2 * i][0], chosen=items[2 * i][1], rejected=items[2 * i + 1][1],
                    ref_chosen_logp=scores[2 * i], ref_rejected_logp=scores[2 * i + 1]) for i in range(3)]


def _rank_main(rank: int, world: int, port: int, model_dir: str, out: str) -> None:
    from promptcot_worker.sharded import Rank, ShardedBackend, init_group

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    me = Rank(rank, world)
    init_group(me, torch.device("cpu"))
    backend = ShardedBackend.start(model_dir, 0, torch.device("cpu"), me, torch.float32)
    experts = next(p for n, p in backend.model.named_parameters() if n.endswith("experts.gate_up_proj"))
    scores = [s.sum_logprob for s in backend.score(_items(), want_tokens=False)]
    loss = backend.train_step("s", LossKind.DPO, _examples(scores), HYPER)["loss"]
    backend.save_checkpoint(Path(out) / "ckpt", include_optimizer=True)
    if rank == 0:
        torch.save({"scores": scores, "loss": loss, "local_experts": experts.to_local().shape[0]}, Path(out) / "out.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("sharded-start")
    torch.set_num_threads(1)
    toy = tiny_qwen3_moe()
    toy.model.save_pretrained(str(tmp / "model"))
    toy.tokenizer.save_pretrained(str(tmp / "model"))
    single = TransformersBackend(load_source(str(tmp / "model"), 0, torch.float32), torch.device("cpu"), "toy")
    scores = [s.sum_logprob for s in single.score(_items(), want_tokens=False)]
    loss = single.train_step("s", LossKind.DPO, _examples(scores), HYPER)["loss"]
    mp.start_processes(_rank_main, args=(2, _free_port(), str(tmp / "model"), str(tmp)), nprocs=2, join=True,
                       start_method="spawn")
    return {"tmp": tmp, "single": single, "scores": scores, "loss": loss, "sharded": torch.load(tmp / "out.pt")}


def test_ranks_started_from_safetensors_match_the_single_worker(run: dict) -> None:
    got = run["sharded"]
    assert got["local_experts"] == 4  # 8 experts, rank 0 read only its 4
    assert got["scores"] == pytest.approx(run["scores"], abs=ATOL)
    assert got["loss"] == pytest.approx(run["loss"], abs=ATOL)


def test_the_ranks_hf_copy_loads_in_transformers(run: dict) -> None:
    from transformers import AutoModelForCausalLM

    ckpt: Path = run["tmp"] / "ckpt"
    assert len(list(ckpt.glob("model-*-of-00002.safetensors"))) == 2
    loaded = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32).state_dict()
    live = run["single"].model.state_dict()
    assert set(loaded) == set(live)
    assert max(float((loaded[k] - live[k]).abs().max()) for k in live) < WEIGHT_ATOL
