"""Ray launcher: `python -m promptcot_worker.ray_launcher --spec DIR/spec.json`, submitted by the controller
as a Ray job (src/cluster/ray-launcher.ts).

It reserves one placement-group bundle per worker, starts one actor per bundle, and each actor runs the
ordinary worker server (`promptcot_worker.server`) as its child process. The controller and the launcher
talk through files in one directory that both see at the same path (the spec's `dir`, a shared
filesystem, as checkpoints already need):

  workers/<id>.json            written here: {generation, state, address, pid, actor_pid, node_ip, ...}
  requests/<id>.<gen>.json     written by the controller: (re)start worker <id> as generation <gen>
                               from {"checkpoint": ...}
  requests/<id>.kill           kill that worker's server process now (tests, operators)
  requests/stop                stop everything and exit
  controller.alive             touched by the controller every few seconds; when it is older than the
                               spec's controller_timeout_s the launcher stops everything (controller killed)
  logs/<id>.log                each worker server's stderr

A sharded trainer (workers.trainer_ranks = N > 1) is N entries of the spec's workers, one bundle each, with
{"group": <leader id>, "rank": r, "world": N}; rank 0's id is the group's. The controller (re)starts and
counts generations by the leader's id only: every (re)start of the group asks rank 0's actor for a free
port on its node, then starts all N servers with RANK/WORLD_SIZE and MASTER_ADDR/MASTER_PORT = that node's
address and port (torch.distributed's rendezvous), and GLOO_SOCKET_IFNAME = the interface carrying each
rank's own node address, so gloo talks over the network Ray placed the ranks on.

States: starting -> running -> exited (the server process ended) | lost (its actor or node is gone)
| failed (it could not start). Every file is written to a temp name and renamed, so readers never see half.

A managed vLLM server (the controller's engine.type vllm on cluster.type ray) is an entry with
{"kind": "vllm", "python": <the vLLM virtualenv's python>, "resources": {"CPU": c} or {"CPU": c, "GPU": tp},
"env": {...}, "key_env": <name>}: its actor picks a free port on its node and runs
`python -m promptcot_worker.vllm_serve <argv>` bound to the node's address (not 0.0.0.0), with the entry's env
and VLLM_API_KEY = the job environment's <key_env> (the key travels in the job's runtime_env, never in the
spec or a log). It is published "running" as soon as it is spawned; the controller waits for its /health,
with the key. vLLM forks helpers (its engine core), so the server runs in a process group of its own under a
reaper shell that the kernel signals when the actor dies: a kill, an actor death or the launcher's close ends
the whole group.

The actor runs the server as a child process, not in-process: the server's main owns process-wide state
(signal handlers, which only the main thread may install, stdout reserved for the READY line, os._exit on
Shutdown), an actor method runs in a worker thread, and a child can be killed and restarted from another
checkpoint without giving up the actor's bundle. The server watches its parent, so it dies with the actor.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

log = logging.getLogger("promptcot_worker.ray_launcher")
READY_PREFIX = "PROMPTCOT_READY "
POLL_S = 0.25
HEALTH_EVERY_S = 1.0


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def node_ip() -> str:
    try:
        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (tests of the actor class): this host
        return socket.gethostbyname(socket.gethostname())


def interface_of(ip: str) -> str | None:
    """The network interface carrying `ip`; the loopback interface for any 127.0.0.0/8 address (Linux answers
    all of it on lo without aliases); None when no interface has it."""
    want_loopback = ip.startswith("127.")
    for name, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family == socket.AF_INET and (a.address == ip or (want_loopback and a.address.startswith("127."))):
                return name
    return None


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def rendezvous_port() -> int:
    """A port for rank 0's TCPStore, which listens on every address of the node (not only the node's own):
    probing only the node address can return a port another process listens on at a different address of the
    same host (on a loopback cluster, a Ray worker of the 127.0.0.2 node), and the store then fails with
    EADDRINUSE. Probing the wildcard address finds a port free on all of them."""
    return free_port("0.0.0.0")


# Leads the server's process group: runs it, and on its exit or on TERM (the actor died: PDEATHSIG) kills the
# whole group, vLLM's forked helpers included. The same shell as the controller's (src/rollout/server-process.ts).
GROUP_REAPER = '"$@" & trap \'kill -KILL -- -$$\' TERM INT HUP; wait $!; s=$?; kill -KILL -- -$$; exit $s'
PR_SET_PDEATHSIG = 1
VLLM_KEY_PREFIX = "PROMPTCOT_VLLM_KEY_"


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends TERM to this child when the actor's thread that spawned it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the launcher's close still kills the group
        pass


def vllm_command(python: str, argv: list[str], ip: str, port: int) -> list[str]:
    """The vLLM server's command, listening on `ip`:`port` (the controller's argv carries placeholders)."""
    args = list(argv)
    for flag, value in (("--host", ip), ("--port", str(port))):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return ["bash", "-c", GROUP_REAPER, "promptcot-reaper", python, *args]


def vllm_env(base: dict[str, str], extra: dict[str, str], key_env: str) -> dict[str, str]:
    """The server's environment: the entry's, its own key as VLLM_API_KEY, no other server's key, no worker secret."""
    key = base.get(key_env)
    if not key:
        raise RuntimeError(f"the job environment has no {key_env}: a managed vLLM server never runs without its key")
    env = {k: v for k, v in base.items() if not k.startswith(VLLM_KEY_PREFIX) and k != "PROMPTCOT_WORKER_SECRET"}
    env.update(extra)
    env["VLLM_API_KEY"] = key
    return env


class WorkerServer:
    """One worker server process (or, kind "vllm", one vLLM server). The actor class below wraps it; tests can
    use it without Ray."""

    def __init__(self, worker_id: str, argv: list[str], log_path: str, vllm: dict[str, Any] | None = None) -> None:
        self.worker_id = worker_id
        self.argv = argv
        self.log_path = log_path
        self.vllm = vllm
        self.proc: subprocess.Popen[str] | None = None
        self.lock = threading.Lock()

    def rendezvous(self) -> dict[str, Any]:
        """Where rank 0 of a group (this actor) takes the other ranks' rendezvous: its node's address."""
        ip = node_ip()
        return {"addr": ip, "port": rendezvous_port()}

    def start(self, checkpoint: str | None, timeout_s: float, rank_env: dict[str, str] | None = None) -> dict[str, Any]:
        with self.lock:
            self._kill()
            if self.vllm is not None:
                return self._start_vllm()
            args = [sys.executable, *self.argv] + (["--init-checkpoint", checkpoint] if checkpoint else [])
            env = dict(os.environ)
            if rank_env:
                env.update(rank_env)
                ifname = interface_of(node_ip())
                if ifname and "GLOO_SOCKET_IFNAME" not in os.environ:  # an operator's choice wins
                    env["GLOO_SOCKET_IFNAME"] = ifname
            with open(self.log_path, "a") as err:
                self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                             text=True, env=env)
            port = self._await_ready(self.proc, timeout_s)
            return {"port": port, "pid": self.proc.pid, "actor_pid": os.getpid(), "node_ip": node_ip()}

    def _start_vllm(self) -> dict[str, Any]:
        """Spawns the vLLM server on this node's address; the controller waits for its /health."""
        v = self.vllm
        assert v is not None
        ip = node_ip()
        port = free_port(ip)
        env = vllm_env(dict(os.environ), v.get("env", {}), v["key_env"])
        with open(self.log_path, "a") as out:
            self.proc = subprocess.Popen(vllm_command(v["python"], self.argv, ip, port), stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL, text=True, env=env, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        return {"port": port, "pid": self.proc.pid, "actor_pid": os.getpid(), "node_ip": ip}

    def _await_ready(self, proc: subprocess.Popen[str], timeout_s: float) -> int:
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.startswith(READY_PREFIX):
                    return int(json.loads(line[len(READY_PREFIX):])["port"])
        finally:
            timer.cancel()
        code = proc.wait()
        raise RuntimeError(f"worker {self.worker_id} exited with {code} before it was ready "
                           f"(timeout {timeout_s}s); see {self.log_path}")

    def poll(self) -> int | None:
        """None while the server runs; its exit code once it has ended."""
        proc = self.proc
        return None if proc is None else proc.poll()

    def kill(self) -> None:
        with self.lock:
            self._kill()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.vllm is not None:  # the reaper shell leads the group: end every process in it
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                self.proc.kill()
            self.proc.wait()


# Threads, so poll() answers while start() waits for a model to load.
WorkerActor = ray.remote(max_restarts=0, max_concurrency=4)(WorkerServer)


class Launcher:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.dir = Path(spec["dir"])
        for sub in ("workers", "requests", "logs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.workers = {w["id"]: w for w in spec["workers"]}
        # leader id -> its ranks' ids in rank order (sharded trainers); every other worker is its own leader
        self.groups: dict[str, list[str]] = {}
        for w in sorted(spec["workers"], key=lambda w: w.get("rank", 0)):
            self.groups.setdefault(w.get("group", w["id"]), []).append(w["id"])
        self.actors: dict[str, Any] = {}
        self.generation: dict[str, int] = {}
        self.state: dict[str, str] = {}
        self.pending: dict[Any, tuple[str, int]] = {}
        self.pg = None

    def bundle(self, wid: str) -> dict[str, float]:
        """An entry's own bundle (a vLLM server's {GPU: tensor_parallel_size}), else the spec's per-worker one."""
        own = self.workers[wid].get("resources")
        if own:
            return {k: float(v) for k, v in own.items()}
        bundle: dict[str, float] = {"CPU": self.spec["cpus_per_worker"]}
        if self.spec["gpus_per_worker"] > 0:
            bundle["GPU"] = self.spec["gpus_per_worker"]
        return bundle

    def place(self) -> None:
        bundles = [self.bundle(w["id"]) for w in sorted(self.workers.values(), key=lambda w: w["bundle"])]
        self.pg = placement_group(bundles, strategy=self.spec["placement_strategy"])
        ready, _ = ray.wait([self.pg.ready()], timeout=self.spec["placement_timeout_s"])
        if not ready:
            raise RuntimeError(
                f"the placement group ({len(self.workers)} bundles: {bundles}, {self.spec['placement_strategy']}) "
                f"was not placed within {self.spec['placement_timeout_s']}s; the cluster has "
                f"{ray.cluster_resources()}. Lower workers.count or cluster.ray.cpus_per_worker/gpus_per_worker, or add nodes.")

    def _actor(self, wid: str) -> Any:
        w = self.workers[wid]
        b = self.bundle(wid)
        strategy = PlacementGroupSchedulingStrategy(placement_group=self.pg, placement_group_bundle_index=w["bundle"])
        vllm = ({"python": w["python"], "env": w.get("env", {}), "key_env": w["key_env"]}
                if w.get("kind") == "vllm" else None)
        # Ray sets the actor's CUDA_VISIBLE_DEVICES to the bundle's GPUs; its server child inherits them.
        return WorkerActor.options(num_cpus=b.get("CPU", 0), num_gpus=b.get("GPU", 0),
                                   scheduling_strategy=strategy, name=None).remote(
            wid, w["argv"], str(self.dir / "logs" / f"{wid}.log"), vllm)

    def start(self, leader: str, generation: int, checkpoint: str | None) -> None:
        """(Re)starts worker `leader`, or every rank of the group it leads, as `generation`."""
        ranks = self.groups[leader]
        for wid in ranks:
            if wid not in self.actors or self.state.get(wid) == "lost":
                self.actors[wid] = self._actor(wid)
            self.generation[wid] = generation
            self._publish(wid, "starting")
        envs: list[dict[str, str] | None] = [None]
        if len(ranks) > 1:
            try:
                rdv = ray.get(self.actors[leader].rendezvous.remote(), timeout=60)
            except Exception as err:  # noqa: BLE001 - rank 0's actor or node is gone: the group cannot start
                lost = isinstance(err, ray.exceptions.RayActorError)
                for wid in ranks:
                    self._publish(wid, "lost" if lost else "failed", error=f"rendezvous: {str(err)[-2000:]}")
                return
            envs = [{"RANK": str(r), "WORLD_SIZE": str(len(ranks)), "MASTER_ADDR": rdv["addr"],
                     "MASTER_PORT": str(rdv["port"])} for r in range(len(ranks))]
            log.info("group %s (%d ranks): rendezvous at %s:%s", leader, len(ranks), rdv["addr"], rdv["port"])
        for wid, env in zip(ranks, envs):
            ref = self.actors[wid].start.remote(checkpoint, self.spec["startup_timeout_s"], env)
            self.pending[ref] = (wid, generation)

    def _publish(self, wid: str, state: str, **extra: Any) -> None:
        self.state[wid] = state
        write_json(self.dir / "workers" / f"{wid}.json",
                   {"id": wid, "generation": self.generation[wid], "state": state, "time": time.time(), **extra})

    def collect_started(self) -> None:
        if not self.pending:
            return
        done, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        for ref in done:
            wid, gen = self.pending.pop(ref)
            if gen != self.generation[wid]:
                continue  # superseded by a newer request
            try:
                info = ray.get(ref)
            except Exception as err:  # noqa: BLE001 - reported to the controller, which decides
                lost = isinstance(err, ray.exceptions.RayActorError)
                self._publish(wid, "lost" if lost else "failed", error=str(err)[-2000:])
                continue
            host = info["node_ip"]
            self._publish(wid, "running", address=f"{host}:{info['port']}", **info)

    def check_health(self) -> None:
        polls = {wid: a.poll.remote() for wid, a in self.actors.items() if self.state.get(wid) == "running"}
        for wid, ref in polls.items():
            try:
                code = ray.get(ref, timeout=10)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as err:
                self._publish(wid, "lost", error=str(err)[-2000:])
                continue
            if code is not None and self.state.get(wid) == "running":
                self._publish(wid, "exited", exit_code=code)

    def handle_requests(self) -> bool:
        """Acts on the controller's request files; False once asked to stop."""
        for req in sorted((self.dir / "requests").iterdir()):
            if req.name == "stop":
                return False
            if req.name.startswith("."):
                continue
            wid, _, rest = req.name.partition(".")
            if rest == "kill" and wid in self.actors:
                self.actors[wid].kill.remote()
            elif rest.endswith(".json") and wid in self.groups:
                gen = int(rest[: -len(".json")])
                if gen > self.generation.get(wid, -1):
                    self.start(wid, gen, json.loads(req.read_text()).get("checkpoint"))
            req.unlink(missing_ok=True)
        return True

    def controller_alive(self) -> bool:
        """The controller refreshes controller.alive every few seconds; a killed controller leaves no workers."""
        try:
            age = time.time() - (self.dir / "controller.alive").stat().st_mtime
        except FileNotFoundError:
            age = 0.0
        if age > self.spec["controller_timeout_s"]:
            log.warning("controller heartbeat is %.0fs old: stopping the workers", age)
            return False
        return True

    def serve(self) -> bool:
        """Serves until asked to stop (True) or until the controller falls silent (False)."""
        for leader in self.groups:
            self.start(leader, 0, self.spec.get("checkpoint"))
        write_json(self.dir / "launcher.json", {"state": "serving", "pid": os.getpid()})
        last_health = 0.0
        while self.handle_requests():
            if not self.controller_alive():
                return False
            self.collect_started()
            if time.monotonic() - last_health >= HEALTH_EVERY_S:
                self.check_health()
                last_health = time.monotonic()
            time.sleep(POLL_S)
        return True

    def close(self) -> None:
        # Each actor kills its server first: ray.kill alone ends the actor at once, and a vLLM server's helpers
        # (outside the actor's process) would rely on the reaper's PDEATHSIG alone.
        kills = [a.kill.remote() for a in self.actors.values()]
        try:
            ray.wait(kills, num_returns=len(kills), timeout=15)
        except Exception:  # noqa: BLE001 - a lost actor: its server went with its node
            pass
        for a in self.actors.values():
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.pg is not None:
            remove_placement_group(self.pg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="promptcot_worker.ray_launcher", description=__doc__)
    ap.add_argument("--spec", required=True, help="spec.json written by the controller")
    args = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s launcher %(levelname)s: %(message)s")
    spec = json.loads(Path(args.spec).read_text())
    # `ray job stop` sends SIGTERM: leave through `finally`, so actors and the bundles are released.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ray.init()
    launcher = Launcher(spec)
    try:
        launcher.place()
        asked = launcher.serve()
    except Exception as err:
        write_json(launcher.dir / "launcher.json", {"state": "failed", "error": str(err)[-4000:]})
        raise
    finally:
        launcher.close()
    if not asked:
        msg = f"the controller fell silent (controller.alive older than {spec['controller_timeout_s']}s): workers stopped"
        write_json(launcher.dir / "launcher.json", {"state": "failed", "error": msg})
        log.error("%s", msg)
        return 3  # the job ends FAILED: nobody asked it to stop
    write_json(launcher.dir / "launcher.json", {"state": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
