// Deadlines that grow with the work a call asks for, so a long call is never killed for being long, only for
// crawling: deadline = the caller's fixed part + the call's tokens / workers.min_tokens_per_s. Generate counts
// samples × max_tokens (plus inline prompt ids); ScoreLogProbs and TrainStep count every token they carry
// (a ShardRef by its frame's bytes, 4 per int32 id: never less than the ids it holds).
import type { DeepPartial, GenerateRequest, ScoreRequest, ShardRef, TrainStepRequest } from "./gen/promptcot_worker.js";

/** The slowest progress a live worker may make before its call is cut (tokens per second, per call). */
let minTokensPerS = 5;

/** Set once per run from workers.min_tokens_per_s. */
export function setMinTokensPerS(rate: number): void {
  if (!(rate > 0)) throw new Error(`min tokens per second must be > 0, got ${rate}`);
  minTokensPerS = rate;
}

export function scaledDeadlineMs(fixedMs: number, tokens: number): number {
  return fixedMs + (1000 * tokens) / minTokensPerS;
}

type Ids = number[] | undefined;
const idsOrRef = (ids: Ids, ref: DeepPartial<ShardRef> | undefined) => (ids?.length ? ids.length : Math.ceil((ref?.length ?? 0) / 4));

export function generateTokens(req: DeepPartial<GenerateRequest>): number {
  const max = req.sampling?.maxTokens ?? 0;
  return (req.prompts ?? []).reduce((n, p) => n + (p?.tokenIds?.length ?? 0) + Math.max(1, p?.sampleSeeds?.length ?? 1) * max, 0);
}

export function scoreTokens(req: DeepPartial<ScoreRequest>): number {
  return (req.items ?? []).reduce((n, i) => n + idsOrRef(i?.promptTokenIds as Ids, i?.promptRef) + idsOrRef(i?.completionTokenIds as Ids, i?.completionRef), 0);
}

export function trainTokens(req: DeepPartial<TrainStepRequest>): number {
  return (req.examples ?? []).reduce(
    (n, e) =>
      n + idsOrRef(e?.promptTokenIds as Ids, e?.promptRef) + idsOrRef(e?.completionTokenIds as Ids, e?.completionRef) +
      idsOrRef(e?.chosenTokenIds as Ids, e?.chosenRef) + idsOrRef(e?.rejectedTokenIds as Ids, e?.rejectedRef),
    0,
  );
}
