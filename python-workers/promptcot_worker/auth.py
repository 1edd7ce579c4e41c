"""The per-run secret every worker call carries (docs/WORKER.md "Authentication").

The controller makes a random secret per run and gives it to each worker server in the environment
(PROMPTCOT_WORKER_SECRET), never on the command line, in a file of the run directory or in a log. Every
gRPC call carries it as `x-promptcot-secret` metadata; the server refuses a call without it or with another
value (UNAUTHENTICATED), Info, Health and Shutdown included: off loopback, a worker without it would let
anyone who reaches its port load a checkpoint path, train or stop it.
"""

from __future__ import annotations

import hmac
import os
from typing import Any, Callable

import grpc

SECRET_ENV = "PROMPTCOT_WORKER_SECRET"
METADATA_KEY = "x-promptcot-secret"
MIN_SECRET_CHARS = 16


def secret_from_env() -> str:
    """The secret, taken out of the environment (so no child process inherits it); exits clearly if unset."""
    secret = os.environ.pop(SECRET_ENV, "")
    if len(secret) < MIN_SECRET_CHARS:
        raise SystemExit(
            f"{SECRET_ENV} is {'unset' if not secret else 'shorter than %d characters' % MIN_SECRET_CHARS}: the "
            "worker only serves callers that present the run's secret. The controller sets it; to start a worker "
            f"by hand, export {SECRET_ENV}=$(openssl rand -hex 32) and send it as '{METADATA_KEY}' metadata.")
    return secret


class SecretCheck(grpc.ServerInterceptor):
    """Refuses every call whose metadata lacks the secret (constant-time comparison)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        got = next((v for k, v in details.invocation_metadata or () if k == METADATA_KEY), None)
        if got is None:
            return False
        return hmac.compare_digest(got.encode() if isinstance(got, str) else bytes(got), self._secret)

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or self._allowed(details):
            return handler
        return _refusal(handler)


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"missing or wrong '{METADATA_KEY}' (the run's worker secret)")

    ser = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny, **ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny, **ser)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(deny, **ser)
    return grpc.unary_unary_rpc_method_handler(deny, **ser)


class _AddSecret(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, secret: str) -> None:
        self._md = (METADATA_KEY, secret)

    def _with(self, details: Any) -> Any:
        md = [*(details.metadata or ()), self._md]
        return details._replace(metadata=md) if hasattr(details, "_replace") else _Details(details, md)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with(details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def with_secret(channel: grpc.Channel, secret: str) -> grpc.Channel:
    """A channel whose every call carries `secret` (for Python callers: tests, benches)."""
    return grpc.intercept_channel(channel, _AddSecret(secret))
