"""The Ray launcher's vLLM entries without Ray: the server's command (bound to the node's address), its
environment (its own key only, no worker secret), its resources, and a kill that ends the whole process group."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from promptcot_worker.ray_launcher import Launcher, WorkerServer, vllm_command, vllm_env


def test_command_binds_the_node_address_and_port_under_the_reaper() -> None:
    cmd = vllm_command("/venv/bin/python", ["-m", "promptcot_worker.vllm_serve", "--host", "127.0.0.1", "--port", "0", "--seed", "1"], "10.0.0.7", 8011)
    assert cmd[:4] == ["bash", "-c", cmd[2], "promptcot-reaper"] and "kill -KILL -- -$$" in cmd[2]
    args = cmd[4:]
    assert args[0] == "/venv/bin/python"
    assert args[args.index("--host") + 1] == "10.0.0.7" and args[args.index("--port") + 1] == "8011"
    assert "0.0.0.0" not in args


def test_env_carries_only_its_own_key() -> None:
    base = {"PATH": "/bin", "PROMPTCOT_VLLM_KEY_0": "k0", "PROMPTCOT_VLLM_KEY_1": "k1", "PROMPTCOT_WORKER_SECRET": "s"}
    env = vllm_env(base, {"VLLM_SERVER_DEV_MODE": "1"}, "PROMPTCOT_VLLM_KEY_1")
    assert env == {"PATH": "/bin", "VLLM_SERVER_DEV_MODE": "1", "VLLM_API_KEY": "k1"}
    with pytest.raises(RuntimeError, match="never runs without its key"):
        vllm_env({"PATH": "/bin"}, {}, "PROMPTCOT_VLLM_KEY_0")


def test_an_entry_has_its_own_bundle(tmp_path) -> None:
    spec = {"dir": str(tmp_path), "cpus_per_worker": 1, "gpus_per_worker": 1, "workers": [
        {"id": "worker-0", "bundle": 0, "argv": []},
        {"id": "vllm-0", "bundle": 1, "argv": [], "kind": "vllm", "resources": {"CPU": 2, "GPU": 4}},
    ]}
    launcher = Launcher(spec)
    assert launcher.bundle("worker-0") == {"CPU": 1, "GPU": 1}
    assert launcher.bundle("vllm-0") == {"CPU": 2.0, "GPU": 4.0}


def test_kill_ends_the_server_and_what_it_forked(tmp_path) -> None:
    # a stand-in "python" that forks a helper and sleeps, as vLLM forks its engine core
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!/bin/sh\n{sys.executable} -c 'import time; time.sleep(600)' &\necho $! > {tmp_path}/helper.pid\nexec sleep 600\n")
    fake.chmod(0o755)
    os.environ["PROMPTCOT_VLLM_KEY_0"] = "k"
    try:
        server = WorkerServer("vllm-0", ["--host", "x", "--port", "0"], str(tmp_path / "log"),
                              {"python": str(fake), "env": {}, "key_env": "PROMPTCOT_VLLM_KEY_0"})
        info = server.start(None, 10)
    finally:
        del os.environ["PROMPTCOT_VLLM_KEY_0"]
    assert info["port"] > 0 and server.poll() is None
    for _ in range(100):
        if (tmp_path / "helper.pid").exists() and (tmp_path / "helper.pid").read_text().strip():
            break
        time.sleep(0.05)
    helper = int((tmp_path / "helper.pid").read_text())
    try:
        server.kill()
        assert server.poll() is not None
        assert _gone_within(helper, 5.0), f"the server's helper {helper} outlived the kill"
    finally:
        try:
            os.kill(helper, signal.SIGKILL)  # a failing run leaves nothing behind
        except ProcessLookupError:
            pass


def _gone_within(pid: int, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_rendezvous_port_is_probed_on_every_address(monkeypatch) -> None:
    """Rank 0's TCPStore listens on the wildcard address, so the port must be free there, not only at the node's
    address: on the two-node loopback cluster a probe of 127.0.0.3 alone returned a port a process listened on
    at 127.0.0.2, and the twin's rank 0 died with EADDRINUSE."""
    import socket

    from promptcot_worker import ray_launcher

    bound: list[str] = []
    real_bind = socket.socket.bind

    def recording_bind(self, addr):  # type: ignore[no-untyped-def]
        bound.append(addr[0])
        return real_bind(self, addr)

    monkeypatch.setattr(ray_launcher, "node_ip", lambda: "127.0.0.3")
    monkeypatch.setattr(socket.socket, "bind", recording_bind)
    rdv = WorkerServer("w", [], "/dev/null").rendezvous()
    monkeypatch.undo()
    assert rdv["addr"] == "127.0.0.3" and bound == ["0.0.0.0"]
    with socket.socket() as s:  # what the store does: listen on every address at that port
        s.bind(("0.0.0.0", rdv["port"]))
        s.listen()
