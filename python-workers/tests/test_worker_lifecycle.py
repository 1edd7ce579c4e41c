"""Process behaviour: READY line, clean exits, and no lingering after the parent dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import REPO, TINY, new_log_path, read_ready, start_worker, worker_argv, worker_env
from promptcot_worker.gen import promptcot_worker_pb2 as pb


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has already exited


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_worker_dies_with_its_parent() -> None:
    log_path = new_log_path("orphan")
    cmd = " ".join(f"'{a}'" for a in worker_argv(*TINY)) + f" 2>'{log_path}' & wait"
    shell = subprocess.Popen(["bash", "-c", cmd], cwd=REPO, env=worker_env(), stdout=subprocess.PIPE, text=True)
    ready = read_ready(shell, log_path)
    pid = ready["pid"]
    assert alive(pid) and pid != shell.pid
    shell.kill()  # SIGKILL: the shell gets no chance to pass anything on
    shell.wait()
    try:
        assert wait_gone(pid, 15), f"worker {pid} outlived its parent"
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_shutdown_rpc_exits_cleanly_and_stdout_has_only_ready() -> None:
    worker = start_worker(*TINY, "--trainable-layers", "1", "--worker-id", "shut")
    expected = f'PROMPTCOT_READY {{"port": {worker.ready["port"]}, "pid": {worker.proc.pid}, "worker_id": "shut"}}'
    assert "PROMPTCOT_READY " + json.dumps(worker.ready) == expected
    info = worker.stub.Info(pb.InfoRequest())
    assert 0 < info.trainable_parameters < info.num_parameters  # last block + final norm only
    worker.stub.Shutdown(pb.ShutdownRequest(), timeout=10)
    assert worker.proc.wait(20) == 0
    assert worker.proc.stdout is not None and worker.proc.stdout.read() == ""
    worker.channel.close()


def test_sigterm_exits_cleanly_while_serving() -> None:
    worker = start_worker(*TINY)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(20) == 0
    worker.channel.close()


def test_sigterm_while_loading_exits_cleanly() -> None:
    log_path = new_log_path("early")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(worker_argv(*TINY), cwd=REPO, env=worker_env(),
                                stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.monotonic() + 60
    while "loading model" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # past interpreter start-up: from here on the worker owns SIGTERM
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
