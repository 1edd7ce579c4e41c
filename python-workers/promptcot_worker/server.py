"""gRPC server: `python -m promptcot_worker.server --port 0 --model SOURCE ...`.

Prints one `PROMPTCOT_READY {"port": P, "pid": N, "worker_id": "ID"}` line on stdout when it can serve;
logs go to stderr.
"""

from __future__ import annotations

import os

from . import lifecycle

# Read before the heavy imports below (seconds of torch/transformers) so a parent that dies, or a
# SIGTERM that arrives, during them is still handled.
_PARENT_PID = os.getppid()
if __name__ == "__main__":
    lifecycle.guard_startup(_PARENT_PID)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent import futures  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Iterator  # noqa: E402

import grpc  # noqa: E402
import torch  # noqa: E402

from .backend_transformers import Cancelled, TransformersBackend, resolve_device  # noqa: E402
from .gen import promptcot_worker_pb2 as pb  # noqa: E402
from .gen import promptcot_worker_pb2_grpc as pb_grpc  # noqa: E402
from .models import load_source  # noqa: E402
from .reference import References  # noqa: E402
from .sampling import DEFAULT_MAX_TOKENS, SamplingConfig  # noqa: E402
from .schema import Example, Hyper, LossKind  # noqa: E402
from . import auth, checkpoint, shard_refs, sharded, text_ops  # noqa: E402

PROTO_VERSION = "promptcot.worker.v1"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
STOP_GRACE_S = 5.0
Status = pb.HealthResponse.Status
log = logging.getLogger("promptcot_worker.server")

_LOSS_KINDS = {pb.SFT: LossKind.SFT, pb.DPO: LossKind.DPO, pb.GRPO: LossKind.GRPO}


class Unavailable(Exception):
    """The worker is still starting or is shutting down."""


class WrongWeights(Exception):
    """Generate asked for a weights_version this worker does not hold: it missed a weight sync."""


_ERROR_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (Cancelled, grpc.StatusCode.CANCELLED),
    (WrongWeights, grpc.StatusCode.FAILED_PRECONDITION),
    (FileExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (FileNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
]


def _abort(context: grpc.ServicerContext, err: Exception) -> None:
    for kind, code in _ERROR_CODES:
        if isinstance(err, kind):
            context.abort(code, str(err))
    log.exception("internal error")
    context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Map backend exceptions to gRPC status codes (unary and server-streaming handlers)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except Exception as err:  # noqa: BLE001 - every error becomes a status code
                _abort(context, err)

        return stream

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as err:  # noqa: BLE001
            _abort(context, err)

    return unary


class Worker(pb_grpc.WorkerServicer):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.worker_id: str = args.worker_id
        self.backend: TransformersBackend | None = None
        self.references = References(args)
        self.model_lock = threading.Lock()
        self.busy = 0
        self.stopping = threading.Event()

    # ---- state -------------------------------------------------------------------------------------

    def load(self) -> None:
        if self.args.threads > 0:
            torch.set_num_threads(self.args.threads)
        torch.manual_seed(self.args.seed)
        log.info("loading model %s", self.args.model)
        dtype = getattr(torch, self.args.dtype)
        device = resolve_device(self.args.device, self.args.device_index)
        # A rank of a sharded group builds its model on the meta device and reads only its shards.
        backend = sharded.backend_for_rank(self.args, device, dtype) or TransformersBackend(
            load_source(self.args.model, self.args.seed, dtype), device, self.args.model,
            self.args.trainable_layers, self.args.decode_width, gradient_checkpointing=self.args.gradient_checkpointing,
        )
        if self.args.init_checkpoint:
            path = Path(self.args.init_checkpoint)
            # Optimizer state (and fp32 masters) belong to the one worker that trains; a rollout worker
            # holding them would only waste memory.
            trainer = self.args.role == "trainer"
            backend.load_checkpoint(path, load_optimizer=trainer and checkpoint.has_optimizer(path))
        self.backend = backend
        info = backend.info()
        log.info("ready: %s on %s as %s, %d params (%d trainable), optimizer %s", info["model_name"],
                 info["device"], self.args.role, info["num_parameters"], info["trainable_parameters"],
                 "loaded" if backend.optimizer is not None else "none")

    def status(self) -> int:
        if self.stopping.is_set():
            return Status.DRAINING
        if self.backend is None:
            return Status.STARTING
        return Status.BUSY if self.busy else Status.READY

    @contextlib.contextmanager
    def using_model(self) -> Iterator[TransformersBackend]:
        """Exclusive use of the model; Health keeps answering (BUSY) meanwhile."""
        if self.backend is None or self.stopping.is_set():
            raise Unavailable(f"worker is {Status.Name(self.status())}")
        with self.model_lock:
            self.busy += 1
            try:
                yield self.backend
            finally:
                self.busy -= 1

    def request_stop(self, why: str) -> None:
        if not self.stopping.is_set():
            log.info("stopping: %s", why)
        self.stopping.set()

    # ---- RPCs --------------------------------------------------------------------------------------

    @rpc
    def Info(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.InfoResponse:
        base = {"proto_version": PROTO_VERSION, "worker_id": self.worker_id, "pid": os.getpid(),
                "backend": "transformers", "reads_shard_refs": bool(os.environ.get("PROMPTCOT_RUN_DIR"))}
        if self.backend is None:
            return pb.InfoResponse(**base)
        return pb.InfoResponse(**base, **self.backend.info())

    @rpc
    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> pb.HealthResponse:
        version = self.backend.weights_version if self.backend else 0
        status = self.status()
        return pb.HealthResponse(status=status, weights_version=version, message=Status.Name(status))

    @rpc
    def Generate(self, request: pb.GenerateRequest, context: grpc.ServicerContext) -> Iterator[pb.GenerateResponse]:
        cfg = sampling_config(request.sampling)
        template_kwargs = chat_template_kwargs(request.chat_template_kwargs_json)

        def should_stop() -> bool:
            return self.stopping.is_set() or not context.is_active()

        started, produced = time.perf_counter(), 0
        with self.using_model() as backend:
            expected = request.expected_weights_version
            if expected > 0 and backend.weights_version != expected:
                raise WrongWeights(f"worker {self.worker_id} holds weights_version {backend.weights_version}, "
                                   f"the request expects {expected}; load the current checkpoint first")
            # Reject bad input before any work.
            prompts = [(p, _encode(backend, p, cfg, template_kwargs)) for p in request.prompts]
            for prompt, ids in prompts:
                opens_think = backend.prompt_opens_think(ids)
                for sample in backend.generate(ids, list(prompt.sample_seeds), cfg, request.return_logprobs,
                                               should_stop):
                    produced += len(sample.token_ids)
                    yield pb.GenerateResponse(
                        prompt_id=prompt.id, sample_index=sample.index, text=sample.text,
                        token_ids=sample.token_ids, prompt_token_ids=ids, finish_reason=sample.finish_reason,
                        logprobs=sample.logprobs, weights_version=backend.weights_version,
                        prompt_opens_think=opens_think,
                    )
        seconds = time.perf_counter() - started
        log.info("generate: %d prompts, %d tokens in %.2f s (%.1f tok/s)", len(prompts), produced, seconds,
                 produced / max(seconds, 1e-9))

    @rpc
    def ScoreLogProbs(self, request: pb.ScoreRequest, context: grpc.ServicerContext) -> pb.ScoreResponse:
        items = shard_refs.score_items(request.items, os.environ.get("PROMPTCOT_RUN_DIR"))
        with self.using_model() as backend:
            scorer = self._scorer(backend, request.reference)
            scores = scorer.score(items, request.return_token_logprobs, request.logit_temperature or 1.0)
        results = [
            pb.ScoreResult(id=item.id, sum_logprob=s.sum_logprob, num_tokens=s.num_tokens,
                           token_logprobs=s.token_logprobs)
            for item, s in zip(request.items, scores)
        ]
        return pb.ScoreResponse(results=results)

    def _scorer(self, backend: TransformersBackend, reference: str) -> TransformersBackend:
        """The held weights, or the frozen reference the request names (loaded once, then kept)."""
        if not reference:
            return backend
        if isinstance(backend, sharded.ShardedBackend):
            raise ValueError("a frozen reference (ScoreRequest.reference) is not built for a sharded trainer; "
                             "set train.grpo.kl_coef: 0 or run the trainer on one device")
        return self.references.get(reference, backend.device)

    @rpc
    def TrainStep(self, request: pb.TrainStepRequest, context: grpc.ServicerContext) -> pb.TrainStepResponse:
        if request.loss not in _LOSS_KINDS:
            raise ValueError("TrainStep.loss must be SFT, DPO or GRPO")
        ids = shard_refs.example_ids(request.examples, os.environ.get("PROMPTCOT_RUN_DIR"))
        examples = [_example(e, i) for e, i in zip(request.examples, ids)]
        with self.using_model() as backend:
            metrics = backend.train_step(request.step_id, _LOSS_KINDS[request.loss], examples, _hyper(request.hyper))
            log.info("train step %s (%s): %s", request.step_id, pb.LossKind.Name(request.loss),
                     {k: round(v, 5) for k, v in metrics.items()})
            return pb.TrainStepResponse(metrics=metrics, weights_version=backend.weights_version)

    @rpc
    def SaveCheckpoint(self, request: pb.SaveCheckpointRequest, context: grpc.ServicerContext) -> pb.SaveCheckpointResponse:
        path = _checkpoint_path(request.path)
        with self.using_model() as backend:
            size = backend.save_checkpoint(path, request.include_optimizer)
        log.info("saved checkpoint %s (%d bytes)", path, size)
        return pb.SaveCheckpointResponse(path=str(path), bytes=size)

    @rpc
    def LoadCheckpoint(self, request: pb.LoadCheckpointRequest, context: grpc.ServicerContext) -> pb.LoadCheckpointResponse:
        path = _checkpoint_path(request.path)
        with self.using_model() as backend:
            version = backend.load_checkpoint(path, request.load_optimizer)
        log.info("loaded checkpoint %s (weights_version %d)", path, version)
        return pb.LoadCheckpointResponse(weights_version=version)

    @rpc
    def Tokenize(self, request: pb.TokenizeRequest, context: grpc.ServicerContext) -> pb.TokenizeResponse:
        items = [text_ops.TokenizeIn(i.id, [(m.role, m.content) for m in i.messages], i.text, i.completion,
                                     i.append_eos) for i in request.items]
        template_kwargs = chat_template_kwargs(request.chat_template_kwargs_json)  # parsed as for Generate
        with self.using_model() as backend:  # the tokenizer is shared with the model calls
            done = text_ops.tokenize(backend, items, template_kwargs)
        return pb.TokenizeResponse(items=[pb.TokenizedItem(**vars(t)) for t in done])

    @rpc
    def Embed(self, request: pb.EmbedRequest, context: grpc.ServicerContext) -> pb.EmbedResponse:
        with self.using_model() as backend:
            vectors = text_ops.embed(backend, list(request.texts))
        return pb.EmbedResponse(embeddings=[pb.Embedding(values=v) for v in vectors])

    @rpc
    def Shutdown(self, request: pb.ShutdownRequest, context: grpc.ServicerContext) -> pb.ShutdownResponse:
        self.request_stop("Shutdown RPC")
        return pb.ShutdownResponse()


# ---- wire conversions ------------------------------------------------------------------------------


def sampling_config(p: pb.SamplingParams) -> SamplingConfig:
    if p.temperature < 0 or p.top_k < 0 or p.max_tokens < 0 or not 0.0 <= p.top_p <= 1.0:
        raise ValueError("sampling: temperature, top_k, max_tokens must be >= 0 and top_p in [0, 1]")
    if not 0.0 <= p.min_p <= 1.0 or p.repetition_penalty < 0:
        raise ValueError(f"sampling: min_p must be in [0, 1] (got {p.min_p}) and repetition_penalty >= 0 "
                         f"(0 or 1 = off; got {p.repetition_penalty})")
    return SamplingConfig(
        temperature=float(p.temperature), top_p=float(p.top_p), top_k=int(p.top_k),
        max_tokens=int(p.max_tokens) or DEFAULT_MAX_TOKENS, stop=tuple(s for s in p.stop if s),
        min_p=float(p.min_p), repetition_penalty=float(p.repetition_penalty) or 1.0,
    )


# Arguments of apply_chat_template that the worker sets itself.
_RESERVED_TEMPLATE_KWARGS = frozenset({"conversation", "add_generation_prompt", "tokenize", "return_dict",
                                       "return_tensors", "continue_final_message"})


def chat_template_kwargs(raw: str) -> dict[str, Any]:
    """GenerateRequest.chat_template_kwargs_json: a JSON object (or empty) of chat-template variables."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"chat_template_kwargs_json is not valid JSON ({err}): {raw[:200]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"chat_template_kwargs_json must be a JSON object such as "
                         f'{{"enable_thinking": false}}, got {type(value).__name__}: {raw[:200]!r}')
    clash = sorted(_RESERVED_TEMPLATE_KWARGS & value.keys())
    if clash:
        raise ValueError(f"chat_template_kwargs_json may not set {clash}: the worker sets them")
    return value


def _encode(
    backend: TransformersBackend, p: pb.PromptInput, cfg: SamplingConfig, template_kwargs: dict[str, Any]
) -> list[int]:
    if not p.sample_seeds:
        raise ValueError(f"prompt {p.id!r} has no sample_seeds (n = len(sample_seeds) must be >= 1)")
    ids = backend.encode_prompt([(m.role, m.content) for m in p.messages], p.text, list(p.token_ids),
                                template_kwargs)
    backend.check_tokens([(ids, [])], extra=cfg.max_tokens)
    return ids


def _example(e: pb.TrainExample, ids: dict[str, list]) -> Example:
    """`ids`: the example's token ids and log-probs, inline or read from the shard refs (shard_refs.example_ids)."""
    return Example(
        prompt=ids["prompt"], completion=ids["completion"], chosen=ids["chosen"], rejected=ids["rejected"],
        ref_chosen_logp=e.ref_chosen_logp, ref_rejected_logp=e.ref_rejected_logp,
        advantage=e.advantage, weight=e.weight or 1.0,
        old_logprobs=ids["old_logprobs"], ref_logprobs=ids["ref_logprobs"],
    )


def _hyper(h: pb.TrainHyper) -> Hyper:
    return Hyper(
        learning_rate=h.learning_rate, beta=h.beta, label_smoothing=h.label_smoothing,
        micro_batch_size=h.micro_batch_size, max_grad_norm=h.max_grad_norm, weight_decay=h.weight_decay,
        max_tokens_per_micro_batch=h.max_tokens_per_micro_batch,
        # 0 on the wire = AdamW's usual default
        adam_beta1=h.adam_beta1 or 0.9, adam_beta2=h.adam_beta2 or 0.999, adam_eps=h.adam_eps or 1e-8,
        # GRPO; 0 on the wire = the defaults (a zero clip range would stop all learning)
        clip_low=h.clip_low or 0.2, clip_high=h.clip_high or 0.2, clip_ratio_c=h.clip_ratio_c or 3.0, kl_coef=h.kl_coef,
        kl_estimator=h.kl_estimator or "k3", loss_aggregation=h.loss_aggregation or "token",
        logit_temperature=h.logit_temperature or 1.0, dpo_pair_passes=h.dpo_pair_passes or "joint",
    )


def _checkpoint_path(raw: str) -> Path:
    if not raw:
        raise ValueError("checkpoint path is empty")
    return Path(raw).expanduser().absolute()


# ---- process -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="promptcot_worker.server", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = let the OS choose; the READY line reports it")
    ap.add_argument("--model", required=True,
                    help="smollm2-135m-instruct | tiny-random-llama | tiny-random-qwen2 | tiny-random-qwen3 | HF dir")
    ap.add_argument("--device", default="auto",
                    help="auto | cpu | cuda | cuda:N; auto and cuda put worker --device-index i on cuda:(i mod #GPUs)")
    ap.add_argument("--device-index", type=int, default=0, help="this worker's index among the run's workers")
    ap.add_argument("--role", default="trainer", choices=["trainer", "rollout"],
                    help="trainer: loads optimizer.pt (and fp32 masters) from --init-checkpoint; rollout: weights only")
    ap.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True,
                    help="recompute block activations in the backward pass (less memory, ~1/3 more compute)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0, help="initialises tiny random models and the global RNGs")
    ap.add_argument("--trainable-layers", type=int, default=0, help="train only the last N blocks (+ final norm); 0 = all")
    ap.add_argument("--worker-id", default=f"worker-{os.getpid()}")
    ap.add_argument("--init-checkpoint", default="", help="start from a checkpoint directory written by SaveCheckpoint")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch's default (one per core)")
    ap.add_argument("--decode-width", type=int, default=8,
                    help="rows per decode batch; part of the determinism key (change it and samples change)")
    return ap.parse_args(argv)


def start_server(worker: Worker, host: str, port: int, secret: str) -> tuple[grpc.Server, int]:
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="rpc"), options=options,
                         interceptors=[auth.SecretCheck(secret)])
    pb_grpc.add_WorkerServicer_to_server(worker, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"could not bind {host}:{port}")
    server.start()
    return server, bound


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    secret = auth.secret_from_env()
    ready_stream = lifecycle.reserve_stdout()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"%(asctime)s {args.worker_id} %(levelname)s %(name)s: %(message)s")
    worker = Worker(args)

    def on_signal(signum: int) -> None:
        if worker.backend is None:
            raise SystemExit(0)  # still loading: nothing to drain
        worker.request_stop(signal.Signals(signum).name)

    lifecycle.install_stop_signals(on_signal)
    lifecycle.die_with_parent(_PARENT_PID, lambda: os.kill(os.getpid(), signal.SIGTERM))
    server, port = start_server(worker, args.host, args.port, secret)
    try:
        worker.load()
    except BaseException:
        server.stop(0)
        raise
    lifecycle.announce_ready(ready_stream, port, args.worker_id)
    while not worker.stopping.wait(0.5):
        pass
    server.stop(STOP_GRACE_S).wait(STOP_GRACE_S + 1)
    log.info("stopped")
    logging.shutdown()
    # A TrainStep can still be inside backward(); exiting now is what the controller asked for.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
