"""The per-run secret: a real worker refuses calls without it or with another one (Health and Shutdown
included), serves calls that carry it, and will not start without one."""

from __future__ import annotations

import subprocess

import grpc
import pytest

from conftest import REPO, SECRET, TINY, connect, new_log_path, start_worker, worker_argv, worker_env
from promptcot_worker import auth
from promptcot_worker.gen import promptcot_worker_pb2 as pb


def code_of(call) -> grpc.StatusCode | None:
    try:
        call()
    except grpc.RpcError as err:
        return err.code()
    return None


def test_calls_without_or_with_a_wrong_secret_are_refused_the_right_one_is_served() -> None:
    worker = start_worker(*TINY, "--worker-id", "auth")
    port = worker.ready["port"]
    try:
        for secret in (None, "0" * len(SECRET), SECRET[:-1], SECRET + "0"):
            channel, stub = connect(port, secret)
            try:
                assert code_of(lambda: stub.Health(pb.HealthRequest(), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
                assert code_of(lambda: stub.Info(pb.InfoRequest(), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
                # a server-streaming call is refused as well, before any sample is produced
                gen = pb.GenerateRequest(prompts=[pb.PromptInput(id="p", token_ids=[5, 6], sample_seeds=[1])],
                                         sampling=pb.SamplingParams(max_tokens=2))
                assert code_of(lambda: list(stub.Generate(gen, timeout=10))) == grpc.StatusCode.UNAUTHENTICATED
                assert code_of(lambda: stub.Shutdown(pb.ShutdownRequest(), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
            finally:
                channel.close()
        assert worker.proc.poll() is None  # the refused Shutdowns did not stop it
        info = worker.stub.Info(pb.InfoRequest(), timeout=10)
        assert info.worker_id == "auth"
        assert worker.stub.Health(pb.HealthRequest(), timeout=10).status == pb.HealthResponse.READY
        worker.stub.Shutdown(pb.ShutdownRequest(), timeout=10)
        assert worker.proc.wait(30) == 0
    finally:
        worker.stop()


@pytest.mark.parametrize("secret", [None, "short"])
def test_a_worker_without_a_usable_secret_refuses_to_start(secret: str | None) -> None:
    env = worker_env()
    env.pop(auth.SECRET_ENV)
    if secret is not None:
        env[auth.SECRET_ENV] = secret
    log_path = new_log_path("nosecret")
    with open(log_path, "w") as log:
        proc = subprocess.run(worker_argv(*TINY), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                              timeout=120)
    assert proc.returncode != 0
    assert "PROMPTCOT_READY" not in proc.stdout
    err = log_path.read_text()
    assert auth.SECRET_ENV in err and "openssl rand -hex 32" in err
