"""Fixtures that start real worker processes and talk to them over real gRPC."""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import grpc
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python-workers"))

from promptcot_worker import auth  # noqa: E402
from promptcot_worker.gen import promptcot_worker_pb2 as pb  # noqa: E402
from promptcot_worker.gen import promptcot_worker_pb2_grpc as pb_grpc  # noqa: E402

# One intra-op thread: the tiny model gains nothing from more, and idle OpenMP threads spinning on a
# busy 2-core machine slow everything else down.
TINY = ("--model", "tiny-random-llama", "--threads", "1")
# The worker secret of this test session (the controller makes one per run): every worker started here gets
# it, every channel from connect() sends it.
SECRET = secrets.token_hex(32)
READY_TIMEOUT_S = 180.0  # the first run converts the SmolLM2 GGUF (~30 s); later starts take seconds


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    # Prepend, so packages the caller put on PYTHONPATH (e.g. newer wheels) stay visible to the worker.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "python-workers"), env.get("PYTHONPATH")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env[auth.SECRET_ENV] = SECRET
    return env


def worker_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "promptcot_worker.server", "--host", "127.0.0.1", "--port", "0", *args]


def read_ready(proc: subprocess.Popen, log_path: Path, timeout: float = READY_TIMEOUT_S) -> dict:
    """Wait for the READY line; fail with the worker's stderr if it never comes."""
    box: dict[str, str] = {}

    def read() -> None:
        assert proc.stdout is not None
        box["line"] = proc.stdout.readline()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    line = box.get("line", "")
    if not line.startswith("PROMPTCOT_READY "):
        proc.kill()
        proc.wait()
        err = log_path.read_text(errors="replace")
        raise AssertionError(f"worker not ready (stdout={line!r}); stderr tail:\n{err[-3000:]}")
    return json.loads(line.split(" ", 1)[1])


@dataclass
class RunningWorker:
    proc: subprocess.Popen
    ready: dict
    log_path: Path
    channel: grpc.Channel
    stub: pb_grpc.WorkerStub

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def connect(port: int, secret: str | None = SECRET) -> tuple[grpc.Channel, pb_grpc.WorkerStub]:
    """A channel to the worker on `port` whose calls carry `secret` (None: no secret at all)."""
    mib = 256 * 1024 * 1024
    raw = grpc.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.max_send_message_length", mib), ("grpc.max_receive_message_length", mib)],
    )
    grpc.channel_ready_future(raw).result(timeout=10)
    channel = raw if secret is None else auth.with_secret(raw, secret)
    return channel, pb_grpc.WorkerStub(channel)


@functools.lru_cache(maxsize=1)
def log_dir() -> Path:
    """Worker logs of this session: removed when it passes, kept (and named) when it fails."""
    return Path(tempfile.mkdtemp(prefix="promptcot-worker-logs-"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if log_dir.cache_info().currsize == 0:
        return  # no worker started
    if exitstatus == 0:
        shutil.rmtree(log_dir(), ignore_errors=True)
    else:
        print(f"\nworker logs kept in {log_dir()}", file=sys.stderr)


def new_log_path(tag: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f"promptcot-worker-{tag}-", suffix=".log", dir=log_dir())
    os.close(fd)
    return Path(name)


def start_worker(*args: str) -> RunningWorker:
    # stderr goes to a file, not a pipe: a chatty worker must never block on a full pipe.
    log_path = new_log_path("test")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            worker_argv(*args), cwd=REPO, env=worker_env(), stdout=subprocess.PIPE, stderr=log, text=True
        )
    ready = read_ready(proc, log_path)
    channel, stub = connect(ready["port"])
    return RunningWorker(proc, ready, log_path, channel, stub)


@functools.lru_cache(maxsize=1)
def smollm2_tokenizer():
    """The tokenizer every tiny test model uses, loaded in the test process."""
    from transformers import AutoTokenizer

    from promptcot_worker.models import smollm2_dir

    return AutoTokenizer.from_pretrained(str(smollm2_dir()))


@pytest.fixture(scope="module")
def tiny_worker() -> Iterator[RunningWorker]:
    """A tiny-random-llama worker; module-scoped, so tests in a module share (and may change) its weights."""
    worker = start_worker(*TINY, "--seed", "7", "--worker-id", "tiny")
    yield worker
    worker.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failing test keeps its tmp_path (tmp_path_retention_policy = "failed"): say where it is."""
    report = yield
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and tmp is not None:
        report.sections.append(("kept tmp_path", str(tmp)))
    return report
