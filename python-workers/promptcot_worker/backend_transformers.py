"""The transformers backend: decode loop, scoring, training steps and checkpoints for one model."""

from __future__ import annotations

import inspect
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from transformers import DynamicCache

from . import checkpoint, losses, text_ops
from .moe import RouterAux
from .batch import CompletionBatch, build_batch, chunk_by_budget, completion_logits, micro_batches
from .memory import DEFAULT_CHUNK_TOKENS, blocks_checkpointed, checkpoint_blocks, chunked_token_logprobs, supports_chunked_head
from .memory import transformer_blocks
from .models import LoadedModel
from .precision import MasterWeights
from .sampling import SampleState, SamplingConfig, advance, make_generator, pick_tokens
from .schema import Example, Hyper, LossKind, ScoreOut

# Fault hook for deadline tests: seconds slept before every decode step (a slow but live worker).
_FAULT_SLOW_DECODE_S = float(os.environ.get("PROMPTCOT_FAULT_SLOW_DECODE_S") or 0)
# Fault hook for recovery tests: TrainStep ids (comma-separated) that hold inside the step, once per run.
_FAULT_HOLD_TRAIN_STEPS = frozenset(filter(None, (os.environ.get("PROMPTCOT_FAULT_HOLD_TRAIN_STEP") or "").split(",")))

log = logging.getLogger("promptcot_worker.backend")

# Padded tokens per scoring forward; keeps the [rows, completion, vocab] logits tensor bounded.
SCORE_TOKEN_BUDGET = 4096
SCORE_MAX_ROWS = 16

# How a DPO pair is trained: both sequences in one forward/backward, or each in its own (_dpo_split_passes).
DPO_PAIR_PASSES = ("joint", "split")


class Cancelled(Exception):
    """The caller went away or the worker is stopping; the decode loop ends early."""


def resolve_device(name: str, index: int = 0, cuda_count: int | None = None) -> torch.device:
    """--device for worker ``index``: "auto" and "cuda" spread workers round-robin over the GPUs
    (cuda:(index mod n)); "cuda:N" is taken as given; "auto" without GPUs is the CPU."""
    n = torch.cuda.device_count() if cuda_count is None else cuda_count
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto" and n == 0:
        return torch.device("cpu")
    if name in ("auto", "cuda"):
        if n == 0:
            raise ValueError("--device cuda: no CUDA device is visible (use auto or cpu)")
        return torch.device(f"cuda:{index % n}")
    if name.startswith("cuda:") and name[5:].isdigit():
        if int(name[5:]) >= n:
            raise ValueError(f"--device {name}: only {n} CUDA device(s) visible (cuda:0..cuda:{n - 1})")
        return torch.device(name)
    raise ValueError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")


def freeze_all_but_last(model: torch.nn.Module, n_layers: int) -> None:
    """Train only the last ``n_layers`` blocks and the final norm; 0 trains everything."""
    if n_layers <= 0:
        model.requires_grad_(True)
        return
    blocks = transformer_blocks(model)
    if n_layers > len(blocks):
        raise ValueError(f"--trainable-layers {n_layers} exceeds the model's {len(blocks)} blocks")
    model.requires_grad_(False)
    for block in list(blocks)[-n_layers:]:
        block.requires_grad_(True)
    norm = getattr(getattr(model, "base_model", model), "norm", None)
    if norm is not None:
        norm.requires_grad_(True)


def eos_ids_of(loaded: LoadedModel) -> frozenset[int]:
    ids: set[int] = set()
    for value in (loaded.tokenizer.eos_token_id, getattr(loaded.model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return frozenset(ids)


class TransformersBackend:
    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        source: str,
        trainable_layers: int = 0,
        decode_width: int = 8,
        logprob_chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        gradient_checkpointing: bool = True,
        fp32_master: bool = True,
    ) -> None:
        """``logprob_chunk_tokens`` 0, ``gradient_checkpointing`` False and ``fp32_master`` False give the
        old memory and precision behaviour (kept for bench/worker-memory.py and the tests)."""
        self.model = loaded.model.to(device)
        # Eval mode always: the supported models have no dropout, and this keeps training deterministic.
        self.model.eval()
        self.tokenizer = loaded.tokenizer
        self.name = loaded.name
        self.source = source
        self.device = device
        self.trainable_layers = trainable_layers
        self.decode_width = decode_width
        self.eos_ids = eos_ids_of(loaded)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.optimizer: torch.optim.AdamW | None = None
        self.master: MasterWeights | None = None
        self.fp32_master = fp32_master
        self.stop_eos = _stop_eos(loaded, self.eos_ids)
        self.chunk_tokens = logprob_chunk_tokens if supports_chunked_head(self.model) else 0
        if logprob_chunk_tokens and not self.chunk_tokens:
            log.warning("%s post-processes its logits; log-probs use the full-logits path", self.name)
        if gradient_checkpointing:
            checkpoint_blocks(self.model)
        self.weights_version = 0
        self.last_step: tuple[str, dict[str, float]] | None = None
        forward_args = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_args else "past_key_values"
        freeze_all_but_last(self.model, trainable_layers)
        self.router_aux = RouterAux.attach(self.model)
        self._batch_examples = 1

    # ---- description -------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        params = list(self.model.parameters())
        return {
            "model_name": self.name,
            "device": str(self.device),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "num_parameters": sum(p.numel() for p in params),
            "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
            "vocab_size": int(self.model.config.vocab_size),
            "eos_token_ids": sorted(self.eos_ids),
            "has_chat_template": bool(getattr(self.tokenizer, "chat_template", None)),
            "weights_version": self.weights_version,
            "checkpoints_blocks": blocks_checkpointed(self.model),
        }

    @property
    def max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 1 << 30))

    def check_tokens(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], extra: int = 0) -> None:
        """Reject what would otherwise fail deep inside the model as an internal error."""
        longest = max((len(p) + len(c) for p, c in pairs), default=0) + extra
        if longest > self.max_positions:
            raise ValueError(f"a sequence of {longest} tokens exceeds the model's {self.max_positions} positions")
        vocab = int(self.model.config.vocab_size)
        if any(not 0 <= t < vocab for p, c in pairs for seq in (p, c) for t in seq):
            raise ValueError(f"token ids must be in [0, {vocab})")

    # ---- prompts -----------------------------------------------------------------------------------

    def encode_prompt(
        self,
        messages: Sequence[tuple[str, str]],
        text: str,
        token_ids: Sequence[int],
        template_kwargs: dict[str, Any] | None = None,
    ) -> list[int]:
        """token_ids win over messages, which win over text. ``template_kwargs`` go to the chat template."""
        if token_ids:
            return [int(t) for t in token_ids]
        if messages:
            return text_ops.chat_prompt_ids(self.tokenizer, self.name, messages, template_kwargs)
        if text:
            return [int(t) for t in self.tokenizer(text)["input_ids"]]
        raise ValueError("prompt has no messages, text or token_ids")

    def prompt_opens_think(self, prompt_ids: Sequence[int]) -> bool:
        """The prompt ends inside an open <think> block (its last <think> comes after its last </think>)."""
        text = self.tokenizer.decode(list(prompt_ids), skip_special_tokens=False)
        return text.rfind("<think>") > text.rfind("</think>")

    # ---- generation --------------------------------------------------------------------------------

    def generate(
        self,
        prompt_ids: list[int],
        seeds: Sequence[int],
        cfg: SamplingConfig,
        want_logprobs: bool,
        should_stop: Callable[[], bool],
    ) -> Iterator[SampleState]:
        """Yield each sample of one prompt as soon as it finishes.

        Samples decode in chunks of exactly ``decode_width`` rows (unused rows are filler), so every
        matmul has the same shape whatever n is: a sample's tokens depend only on the weights, the
        prompt, the sampling parameters and its own seed.
        """
        self.check_tokens([(prompt_ids, [])], extra=cfg.max_tokens)
        for start in range(0, len(seeds), self.decode_width):
            chunk = list(seeds[start : start + self.decode_width])
            yield from self._decode_chunk(prompt_ids, chunk, start, cfg, want_logprobs, should_stop)

    def _forward_cached(self, ids: torch.Tensor, cache: DynamicCache, **kwargs: Any) -> torch.Tensor:
        # transformers 5.2x renamed past_key_values to cache; accept either so older images still work.
        def last_logits(model: Any) -> torch.Tensor:
            out = model(input_ids=ids, use_cache=True, **{self._cache_kwarg: cache}, **kwargs)
            return out.logits[:, -1]

        return self._call(last_logits).float().cpu()

    @torch.inference_mode()
    def _prefill(self, prompt_ids: list[int]) -> tuple[DynamicCache, torch.Tensor]:
        """Run the prompt once (batch 1) and copy its KV cache to every row."""
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward_cached(ids, cache, logits_to_keep=1)
        cache.batch_repeat_interleave(self.decode_width)
        return cache, logits.expand(self.decode_width, -1)

    @torch.inference_mode()
    def _step(self, cache: DynamicCache, tokens: torch.Tensor) -> torch.Tensor:
        if _FAULT_SLOW_DECODE_S:
            time.sleep(_FAULT_SLOW_DECODE_S)
        return self._forward_cached(tokens.to(self.device)[:, None], cache)

    def _decode_chunk(
        self,
        prompt_ids: list[int],
        seeds: list[int],
        start: int,
        cfg: SamplingConfig,
        want_logprobs: bool,
        should_stop: Callable[[], bool],
    ) -> Iterator[SampleState]:
        generators = [make_generator(s) for s in seeds]
        states = [SampleState(index=start + i) for i in range(len(seeds))]
        cache, logits = self._prefill(prompt_ids)
        seen = self._seen_mask(prompt_ids, logits.shape[-1]) if cfg.penalizes else None
        filler = torch.full((self.decode_width,), self.pad_id, dtype=torch.long)
        while True:
            picked = pick_tokens(logits, cfg, generators, seen)
            logps = torch.log_softmax(logits, dim=-1) if want_logprobs else None
            for i, state in enumerate(states):
                if state.done:
                    continue
                token = int(picked[i])
                if seen is not None:
                    seen[i, token] = True
                advance(state, token, float(logps[i, token]) if logps is not None else None,
                        cfg, self.eos_ids, self.tokenizer, self.stop_eos)
                if state.done:
                    if want_logprobs and state.unscored:
                        self._score_unsampled(prompt_ids, state)
                    yield state
            if all(s.done for s in states):
                return
            if should_stop():
                raise Cancelled()
            tokens = filler.clone()
            tokens[: len(seeds)] = picked[: len(seeds)]
            logits = self._step(cache, tokens)

    def _seen_mask(self, prompt_ids: list[int], vocab: int) -> torch.Tensor:
        """Per row, the tokens the repetition penalty applies to: the prompt's, then the row's own."""
        seen = torch.zeros((self.decode_width, vocab), dtype=torch.bool)
        seen[:, torch.tensor(prompt_ids, dtype=torch.long)] = True
        return seen

    def _score_unsampled(self, prompt_ids: list[int], state: SampleState) -> None:
        """Log-probs for the tokens a stop cut put in place of sampled ones (re-encoded text, EOS)."""
        scored = self.score([(prompt_ids, state.token_ids)], want_tokens=True)[0].token_logprobs
        state.logprobs.extend(scored[len(state.token_ids) - state.unscored :])

    # ---- scoring -----------------------------------------------------------------------------------

    def token_logprobs(self, batch: CompletionBatch, temperature: float = 1.0) -> torch.Tensor:
        """[B, C] float32 log p(completion token) under softmax(logits / temperature); chunked over tokens
        (at most chunk_tokens rows of logits at a time, at any temperature) unless chunk_tokens is 0."""
        if self.chunk_tokens > 0:
            return self._call(chunked_token_logprobs, batch, self.chunk_tokens, temperature)
        return losses.token_logprobs(self._call(completion_logits, batch), batch.labels, temperature)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(model, *args, **kwargs): every forward goes through here, so a sharded backend can run it inside
        its FSDP root module's forward (where the root's parameters are gathered)."""
        return fn(self.model, *args, **kwargs)

    @torch.inference_mode()
    def score(
        self, items: Sequence[tuple[list[int], list[int]]], want_tokens: bool, temperature: float = 1.0
    ) -> list[ScoreOut]:
        """log p(completion | prompt) under softmax(logits / temperature) for each item, in request order."""
        if temperature <= 0:
            raise ValueError(f"logit_temperature must be > 0 (0 on the wire = 1), got {temperature}")
        self.check_tokens(items)
        results: list[ScoreOut | None] = [None] * len(items)
        lengths = [len(p) + len(c) for p, c in items]
        for chunk in chunk_by_budget(lengths, SCORE_MAX_ROWS, SCORE_TOKEN_BUDGET):
            batch = build_batch([items[i] for i in chunk], self.pad_id, self.device)
            tok = self.token_logprobs(batch, temperature).cpu()
            for row, idx in enumerate(chunk):
                n = len(items[idx][1])
                values = tok[row, :n]
                results[idx] = ScoreOut(
                    sum_logprob=float(values.double().sum()),
                    num_tokens=n,
                    token_logprobs=values.tolist() if want_tokens else [],
                )
        return [r for r in results if r is not None]

    # ---- training ----------------------------------------------------------------------------------

    def _masters(self) -> MasterWeights:
        if self.master is None:
            named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            self.master = MasterWeights(named, keep_fp32=self.fp32_master)
        return self.master

    def _optimizer_for(self, hyper: Hyper) -> torch.optim.AdamW:
        """AdamW over the masters in two groups: weight decay on matrices, none on norms and biases.
        The controller sends lr (its schedule's value for this step), betas and eps with every step."""
        if self.optimizer is None:
            groups = checkpoint.decay_groups(self._masters().names, self._masters().masters)
            self.optimizer = torch.optim.AdamW(
                [{"params": [self._masters().masters[i] for i in idx], "decay": decay} for decay, idx in groups],
                lr=hyper.learning_rate,
            )
        for group in self.optimizer.param_groups:
            group["lr"] = hyper.learning_rate
            group["weight_decay"] = hyper.weight_decay if group.get("decay", True) else 0.0
            group["betas"] = (hyper.adam_beta1, hyper.adam_beta2)
            group["eps"] = hyper.adam_eps
        return self.optimizer

    def train_step(self, step_id: str, kind: LossKind, examples: list[Example], hyper: Hyper) -> dict[str, float]:
        """One optimizer step over ``examples``, accumulating gradients over micro batches."""
        if step_id and self.last_step is not None and self.last_step[0] == step_id:
            # A retried call (e.g. after a dropped connection) must not apply the update twice.
            log.warning("train step %s already applied; returning its metrics", step_id)
            return dict(self.last_step[1])
        _validate(kind, examples, hyper)
        self.check_tokens([(e.prompt, seq) for e in examples for seq in (e.completion, e.chosen, e.rejected)])
        started = time.perf_counter()
        self._batch_examples = len(examples)
        optimizer = self._optimizer_for(hyper)
        masters = self._masters()
        optimizer.zero_grad(set_to_none=True)
        self.model.zero_grad(set_to_none=True)
        stats = self._accumulate(kind, examples, hyper, masters)
        if step_id in _FAULT_HOLD_TRAIN_STEPS:
            _fault_hold(step_id)
        limit = hyper.max_grad_norm if hyper.max_grad_norm > 0 else float("inf")
        grad_norm = self._clip_grads(masters.masters, limit)
        optimizer.step()
        masters.push()
        optimizer.zero_grad(set_to_none=True)
        self.weights_version += 1
        metrics = _finish_metrics(stats, grad_norm, len(examples), hyper, time.perf_counter() - started)
        self.last_step = (step_id, metrics)
        return dict(metrics)

    def _clip_grads(self, params: list[torch.Tensor], limit: float) -> float:
        return float(torch.nn.utils.clip_grad_norm_(params, limit))

    def _accumulate(
        self, kind: LossKind, examples: list[Example], hyper: Hyper, masters: MasterWeights
    ) -> dict[str, Any]:
        normalizer = _normalizer(kind, examples, hyper)
        stats: dict[str, Any] = {"loss": 0.0, "tokens": 0, "chosen": [], "rejected": [], "clip": [],
                                 "dual_clip": [], "kl": [], "micro_batches": 0}
        rows = _rows_of(kind, examples, hyper)
        for micro in micro_batches(rows, hyper.micro_batch_size, hyper.max_tokens_per_micro_batch):
            for loss, reported in self._micro_passes(kind, [examples[i] for i in micro], hyper, normalizer, stats):
                loss.backward()
                masters.take_grads()  # after each backward, so a split pair's two passes also add up in fp32
                stats["loss"] += reported
            stats["micro_batches"] += 1
        return stats

    def _micro_passes(
        self, kind: LossKind, micro: list[Example], hyper: Hyper, normalizer: float, stats: dict[str, Any]
    ) -> Iterator[tuple[torch.Tensor, float]]:
        """The backward passes of one micro batch, each built only after the caller has run the previous one's
        backward (so one graph is alive at a time): (tensor to backward, its part of the reported loss). One pass,
        except DPO with dpo_pair_passes "split" (_dpo_split_passes). A caller may scale each tensor (the sharded
        ranks' world factor, a filler's 0): the gradient scales with it."""
        if kind == LossKind.DPO and hyper.dpo_pair_passes == "split":
            yield from self._dpo_split_passes(micro, hyper, normalizer, stats)
            return
        loss = self._micro_loss(kind, micro, hyper, normalizer, stats)
        yield loss, float(loss.detach())

    def _micro_loss(
        self, kind: LossKind, micro: list[Example], hyper: Hyper, normalizer: float, stats: dict[str, Any]
    ) -> torch.Tensor:
        loss = self._objective(kind, micro, hyper, normalizer, stats)
        return self._with_router_aux(loss, len(micro) / self._batch_examples, stats)

    def _with_router_aux(self, loss: torch.Tensor, share: float, stats: dict[str, Any]) -> torch.Tensor:
        """``loss`` plus the last forward's router load-balancing term (MoE models) times its share of the batch."""
        aux = self.router_aux.take() if self.router_aux is not None else None
        if aux is None:
            return loss
        stats.setdefault("router_aux", []).append(float(aux.detach()))
        return loss + aux * share

    def _objective(
        self, kind: LossKind, micro: list[Example], hyper: Hyper, normalizer: float, stats: dict[str, Any]
    ) -> torch.Tensor:
        weights = torch.tensor([e.weight for e in micro], dtype=torch.float32, device=self.device)
        if kind == LossKind.DPO:
            return self._dpo_micro(micro, hyper, normalizer, weights, stats)
        batch = build_batch([(e.prompt, e.completion) for e in micro], self.pad_id, self.device)
        stats["tokens"] += batch.num_tokens
        if kind == LossKind.SFT:
            return losses.nll_loss(self.token_logprobs(batch), batch.mask, weights, normalizer)
        return self._grpo_micro(micro, batch, hyper, normalizer, weights, stats)

    def _grpo_micro(
        self, micro: list[Example], batch: CompletionBatch, hyper: Hyper, normalizer: float,
        weights: torch.Tensor, stats: dict[str, Any],
    ) -> torch.Tensor:
        """The policy's log-probs at the sampling temperature against the behaviour policy's (old_logprobs,
        scored by the controller before the update at the same temperature); without old log-probs the
        step is on-policy (ratio 1, only its gradient matters)."""
        tok = self.token_logprobs(batch, hyper.logit_temperature)
        adv = torch.tensor([e.advantage for e in micro], dtype=torch.float32, device=self.device) * weights
        old = _padded([e.old_logprobs for e in micro], tok) if micro[0].old_logprobs else tok.detach()
        ref = _padded([e.ref_logprobs for e in micro], tok) if hyper.kl_coef > 0 else None
        loss, extra = losses.grpo_loss(
            tok, old, adv, batch.mask, hyper.clip_low, hyper.clip_high, hyper.loss_aggregation, normalizer,
            ref, hyper.kl_coef, hyper.kl_estimator, hyper.clip_ratio_c,
        )
        stats["clip"].append(float(extra["clip_fraction"]))
        stats.setdefault("dual_clip", []).append(float(extra["dual_clip_fraction"]))  # setdefault: callers' own dicts
        stats["kl"].append(float(extra["kl"]))
        return loss

    def _dpo_micro(
        self, micro: list[Example], hyper: Hyper, normalizer: float, weights: torch.Tensor, stats: dict[str, Any]
    ) -> torch.Tensor:
        pairs = [(e.prompt, e.chosen) for e in micro] + [(e.prompt, e.rejected) for e in micro]
        batch = build_batch(pairs, self.pad_id, self.device)
        stats["tokens"] += batch.num_tokens
        seq = self._sequence_logps(batch)
        m = len(micro)
        per_pair = self._dpo_pairs(micro, hyper, seq[:m], seq[m:], stats)
        return (per_pair * weights).sum() / normalizer

    def _sequence_logps(self, batch: CompletionBatch) -> torch.Tensor:
        # Sequence sums and the policy - reference differences in float64, as score() sums the reference: a
        # float32 sum of a long completion's log-probs is off by its ulp (~1e-3 nats at |sum| ~ 1e4), and the
        # reference, float64 on the wire, lost the same again when made float32; at step 1 (policy == reference)
        # that rounding was the whole margin (tests/test_dpo_first_step.py).
        return losses.sequence_logprobs(self.token_logprobs(batch).double(), batch.mask.double())

    def _dpo_pairs(self, micro: list[Example], hyper: Hyper, chosen: torch.Tensor, rejected: torch.Tensor,
                   stats: dict[str, Any]) -> torch.Tensor:
        """Per-pair DPO losses from the policy's summed log-probs; records the rewards."""
        ref = torch.tensor([[e.ref_chosen_logp, e.ref_rejected_logp] for e in micro], dtype=torch.float64,
                           device=self.device)
        per_pair, chosen_r, rejected_r = losses.dpo_loss(
            chosen, rejected, ref[:, 0], ref[:, 1], hyper.beta, hyper.label_smoothing
        )
        stats["chosen"].extend(chosen_r.tolist())
        stats["rejected"].extend(rejected_r.tolist())
        return per_pair

    def _dpo_split_passes(
        self, micro: list[Example], hyper: Hyper, normalizer: float, stats: dict[str, Any]
    ) -> Iterator[tuple[torch.Tensor, float]]:
        """A DPO micro batch with each side in its own forward/backward, so activations hold the chosen rows or the
        rejected rows, never both (half the joint pass at one pair of equal lengths). The DPO loss couples a pair
        only through its two summed log-probs, so the gradient is exact:
          1. chosen, no graph: their sums logp_c (constants below);
          2. rejected with a graph: the true loss L(logp_c, logp_r), backward gives dL/dlogp_r · dlogp_r/dθ, and
             g_c = dL/dlogp_c comes from the same small loss graph (autograd on logp_c as a leaf);
          3. chosen again with a graph: the surrogate Σ g_c · logp_c, backward gives the rest, g_c · dlogp_c/dθ.
        Cost: one extra no-grad forward of the chosen rows. The reported loss, rewards and tokens are the joint
        mode's (up to the rounding of other batch shapes). A MoE router's load-balancing term is computed per
        forward (chosen, rejected), each with half the micro batch's share: the mean of the two sides' terms, not
        the term of the two concatenated (it depends on the batch's composition, as micro-batching already does)."""
        weights = torch.tensor([e.weight for e in micro], dtype=torch.float64, device=self.device)
        chosen = build_batch([(e.prompt, e.chosen) for e in micro], self.pad_id, self.device)
        rejected = build_batch([(e.prompt, e.rejected) for e in micro], self.pad_id, self.device)
        stats["tokens"] += chosen.num_tokens + rejected.num_tokens
        share = len(micro) / self._batch_examples / 2
        with self._no_grad():
            logp_c = self._sequence_logps(chosen).detach().requires_grad_(True)
        loss = (self._dpo_pairs(micro, hyper, logp_c, self._sequence_logps(rejected), stats) * weights).sum()
        loss = loss / normalizer
        (g_c,) = torch.autograd.grad(loss, [logp_c], retain_graph=True)
        total = self._with_router_aux(loss, share, stats)
        yield total, float(total.detach())
        surrogate = (g_c.detach() * self._sequence_logps(chosen)).sum()
        with_aux = self._with_router_aux(surrogate, share, stats)
        yield with_aux, float((with_aux - surrogate).detach())

    def _no_grad(self) -> Any:
        """The context of a forward that builds no graph inside a training step."""
        return torch.no_grad()

    # ---- checkpoints -------------------------------------------------------------------------------

    def save_checkpoint(self, path: Path, include_optimizer: bool) -> int:
        meta = {
            "weights_version": self.weights_version,
            "trainable_layers": self.trainable_layers,
            "model_source": self.source,
            "model_name": self.name,
            "last_step_id": self.last_step[0] if self.last_step else "",
            "has_optimizer": bool(include_optimizer and self.optimizer is not None),
        }
        opt = self.optimizer if include_optimizer else None
        # The fp32 masters are the trainer's true weights (model.safetensors has them rounded to bf16).
        masters = self.master.state_dict() if self.master is not None else None
        return checkpoint.save(path, self.model, self.tokenizer, opt, meta, masters)

    def load_checkpoint(self, path: Path, load_optimizer: bool) -> int:
        """Load weights (and optionally optimizer state); weights_version becomes the checkpoint's."""
        meta = checkpoint.meta_for_load(path, self.trainable_layers, load_optimizer)
        checkpoint.load_weights(path, self.model)
        # A sharded trainer's checkpoint: its fp32 weights (the masters) and optimizer are DCP shards.
        sharded = checkpoint.read_dcp(path) if checkpoint.is_dcp(path) else None
        if sharded is not None:
            self._load_fp32(sharded["model"])
        if load_optimizer or self.master is not None:
            self._masters().load(sharded["model"] if sharded is not None else checkpoint.load_masters(path))
        if load_optimizer:
            self.optimizer = None
            optimizer = self._optimizer_for(Hyper(learning_rate=0.0))
            if sharded is not None:
                optimizer.load_state_dict(checkpoint.indexed_optimizer_state(sharded["optim"]))
            else:
                optimizer.load_state_dict(checkpoint.load_optimizer_state(path, optimizer, self._masters().masters))
        checkpoint.load_rng(path)
        self.last_step = None
        self.weights_version = int(meta.get("weights_version", self.weights_version + 1))
        return self.weights_version


    @torch.no_grad()
    def _load_fp32(self, state: dict[str, torch.Tensor]) -> None:
        """The parameters from fp32 copies (rounded to the model's dtype)."""
        for name, param in self.model.named_parameters():
            if name not in state:
                raise ValueError(f"sharded checkpoint lacks {name}")
            param.copy_(state[name])


def _fault_hold(step_id: str) -> None:
    """Holds inside the step (gradients accumulated, the optimizer not stepped) until the process is killed,
    after writing $PROMPTCOT_RUN_DIR/fault-held-<step id>, which a test waits for. A step that held once in this
    run (the file exists) goes through: its redo after a restart must finish."""
    marker = Path(os.environ["PROMPTCOT_RUN_DIR"]) / f"fault-held-{step_id.replace('/', '_')}"
    if marker.exists():
        return
    marker.write_text(str(os.getpid()))
    log.warning("fault injection: holding TrainStep %s (inside the step) until killed", step_id)
    while True:
        time.sleep(1)


def _stop_eos(loaded: LoadedModel, eos_ids: frozenset[int]) -> int | None:
    """The EOS appended to a sample cut at a stop string: the tokenizer's, else the smallest known."""
    eos = loaded.tokenizer.eos_token_id
    if isinstance(eos, int):
        return eos
    return min(eos_ids) if eos_ids else None


def _rows_of(kind: LossKind, examples: list[Example], hyper: Hyper) -> list[tuple[int, int]]:
    """(rows, tokens per row) each example adds to a padded batch: a DPO pair is two rows in one forward, or
    (dpo_pair_passes "split") one row in each of its passes, so a token cap fits twice the pairs."""
    if kind == LossKind.DPO:
        rows = 1 if hyper.dpo_pair_passes == "split" else 2
        return [(rows, len(e.prompt) + max(len(e.chosen), len(e.rejected))) for e in examples]
    return [(1, len(e.prompt) + len(e.completion)) for e in examples]


def _padded(rows: list[list[float]], like: torch.Tensor) -> torch.Tensor:
    """Per-token values ([B] lists of completion length) as a [B, C] tensor shaped like ``like`` (0 on padding)."""
    out = torch.zeros(like.shape, dtype=torch.float32, device=like.device)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    return out


def _validate_grpo(examples: list[Example], hyper: Hyper) -> None:
    if (hyper.logit_temperature <= 0 or not 0 <= hyper.clip_low < 1 or hyper.clip_high < 0
            or not hyper.clip_ratio_c > 1):
        raise ValueError(f"GRPO needs logit_temperature > 0, 0 <= clip_low < 1, clip_high >= 0, clip_ratio_c > 1 "
                         f"(got {hyper.logit_temperature}, {hyper.clip_low}, {hyper.clip_high}, {hyper.clip_ratio_c})")
    with_old = [bool(e.old_logprobs) for e in examples]
    if any(with_old) and not all(with_old):
        raise ValueError("GRPO: either every example has old_logprobs or none (on-policy)")
    for i, e in enumerate(examples):
        for name, values, needed in (("old_logprobs", e.old_logprobs, any(with_old)),
                                     ("ref_logprobs", e.ref_logprobs, hyper.kl_coef > 0)):
            if needed and len(values) != len(e.completion):
                raise ValueError(f"GRPO example {i}: {name} has {len(values)} values for "
                                 f"{len(e.completion)} completion tokens (one per token; kl_coef > 0 needs ref_logprobs)")


def _validate(kind: LossKind, examples: list[Example], hyper: Hyper) -> None:
    if not examples:
        raise ValueError("TrainStep needs at least one example")
    if hyper.learning_rate < 0:
        raise ValueError("learning_rate must be >= 0")
    if hyper.micro_batch_size < 0 or hyper.max_tokens_per_micro_batch < 0:
        raise ValueError("micro_batch_size and max_tokens_per_micro_batch must be >= 0 (0 = no limit)")
    if kind == LossKind.DPO:
        if hyper.beta <= 0:
            raise ValueError("DPO needs beta > 0")
        if any(not e.chosen or not e.rejected for e in examples):
            raise ValueError("DPO examples need chosen_token_ids and rejected_token_ids")
        if hyper.dpo_pair_passes not in DPO_PAIR_PASSES:
            raise ValueError(f"dpo_pair_passes must be one of {', '.join(DPO_PAIR_PASSES)} "
                             f"(train.dpo_pair_passes), got {hyper.dpo_pair_passes!r}")
    elif any(not e.completion for e in examples):
        raise ValueError(f"{kind.name} examples need completion_token_ids")
    if kind == LossKind.GRPO:
        _validate_grpo(examples, hyper)


def _normalizer(kind: LossKind, examples: list[Example], hyper: Hyper) -> float:
    """The full batch's count, so micro-batch losses add up to the full-batch mean."""
    if kind == LossKind.DPO or (kind == LossKind.GRPO and hyper.loss_aggregation == "sequence"):
        return float(len(examples))
    return float(max(1, sum(len(e.completion) for e in examples)))


def _finish_metrics(
    stats: dict[str, Any], grad_norm: float, n: int, hyper: Hyper, seconds: float
) -> dict[str, float]:
    metrics = {
        "loss": stats["loss"],
        "grad_norm": grad_norm,
        "learning_rate": hyper.learning_rate,
        "num_examples": float(n),
        "tokens": float(stats["tokens"]),
        "micro_batches": float(stats["micro_batches"]),
        "seconds": seconds,
    }
    if stats["chosen"]:
        chosen = torch.tensor(stats["chosen"])
        rejected = torch.tensor(stats["rejected"])
        metrics["rewards/chosen"] = float(chosen.mean())
        metrics["rewards/rejected"] = float(rejected.mean())
        metrics["rewards/margin"] = float((chosen - rejected).mean())
        metrics["rewards/accuracy"] = float((chosen > rejected).float().mean())
        # The largest |beta * (policy - reference)| of any completion: at an update's first step (policy ==
        # reference) it is the offset between the scoring and training forwards, which should be ~0.
        metrics["rewards/abs_max"] = float(torch.cat([chosen, rejected]).abs().max())
    if stats.get("router_aux"):
        metrics["router_aux_loss"] = sum(stats["router_aux"]) / len(stats["router_aux"])
    if stats["clip"]:
        metrics["clip_fraction"] = sum(stats["clip"]) / len(stats["clip"])
        if stats.get("dual_clip"):
            metrics["dual_clip_fraction"] = sum(stats["dual_clip"]) / len(stats["dual_clip"])
        metrics["kl"] = sum(stats["kl"]) / len(stats["kl"])
    return metrics
