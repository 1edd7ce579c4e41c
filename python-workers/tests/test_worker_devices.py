"""Device placement per worker (--device, --device-index) and optimizer placement per role (--role)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from conftest import TINY, start_worker
from promptcot_worker.backend_transformers import resolve_device
from promptcot_worker.gen import promptcot_worker_pb2 as pb


def test_auto_and_cuda_spread_workers_round_robin() -> None:
    assert [str(resolve_device("auto", i, cuda_count=3)) for i in range(5)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert str(resolve_device("cuda", 5, cuda_count=2)) == "cuda:1"
    assert str(resolve_device("auto", 4, cuda_count=0)) == "cpu"
    assert str(resolve_device("cpu", 4, cuda_count=8)) == "cpu"
    assert str(resolve_device("cuda:2", 0, cuda_count=4)) == "cuda:2"  # explicit: every worker there


@pytest.mark.parametrize("name, count, message", [
    ("cuda", 0, "no CUDA device"), ("cuda:4", 4, "only 4 CUDA device"), ("gpu", 1, "expected auto, cpu, cuda or cuda:N"),
])
def test_bad_devices_say_what_is_wrong(name: str, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_device(name, 0, cuda_count=count)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_worker_refuses_cuda_without_gpu() -> None:
    with pytest.raises(AssertionError, match="no CUDA device is visible"):
        start_worker(*TINY, "--device", "cuda", "--device-index", "1")


def saved(worker, path: Path) -> Path:
    worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(path), include_optimizer=True), timeout=60)
    return path


def test_only_the_trainer_loads_optimizer_state(tmp_path: Path) -> None:
    rng = random.Random(0)
    example = pb.TrainExample(prompt_token_ids=[rng.randrange(3, 2000) for _ in range(5)],
                              completion_token_ids=[rng.randrange(3, 2000) for _ in range(6)])
    first = start_worker(*TINY, "--seed", "4")
    try:
        first.stub.TrainStep(pb.TrainStepRequest(step_id="a", loss=pb.SFT, examples=[example],
                                                 hyper=pb.TrainHyper(learning_rate=1e-3)), timeout=60)
        ckpt = saved(first, tmp_path / "trained")
    finally:
        first.stop()
    original = torch.load(ckpt / "optimizer.pt", weights_only=True)

    for role in ("trainer", "rollout"):
        worker = start_worker(*TINY, "--seed", "4", "--role", role, "--device-index", "3", "--init-checkpoint", str(ckpt))
        try:
            assert worker.stub.Info(pb.InfoRequest()).device == (f"cuda:{3 % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu")
            again = saved(worker, tmp_path / role)
        finally:
            worker.stop()
        meta = json.loads((again / "worker_meta.json").read_text())
        if role == "rollout":
            assert not (again / "optimizer.pt").exists() and meta["has_optimizer"] is False
            continue
        state = torch.load(again / "optimizer.pt", weights_only=True)
        assert meta["has_optimizer"] is True
        for key, value in original["state"][0].items():
            assert torch.equal(state["state"][0][key], value), key
