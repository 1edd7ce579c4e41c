// Bytes the controller sends the trainer per request, token ids inline vs shard refs (docs/DATA_PLANE.md
// "Workers read shards"), and the controller CPU it takes to build and encode one. Samples are journaled on
// the shard plane as the rollout stage does; requests are built by the same functions the reference, DPO
// and GRPO stages use (src/train/worker-reads.ts) and encoded with the generated protobuf code, which is
// what grpc-js puts on the wire. Token ids are uniform over Qwen3's 151,936-id vocabulary: a packed
// protobuf varint's size depends only on the id's magnitude (3 bytes from 16,384 up), not on the text.
//
//   npx tsx bench/worker-request-bytes.ts [--prompts 16] [--tokens 16000] [--prompt-tokens 200]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ExperimentSchema } from "../src/config/schema.js";
import { Journal } from "../src/experiment/journal.js";
import { ScoreRequest, TrainStepRequest, type TrainExample } from "../src/rpc/gen/promptcot_worker.js";
import type { SampleRecord } from "../src/rollout/generate-stage.js";
import { completionIds, logprobsOf, pairIds, scoreItemOf } from "../src/train/worker-reads.js";

const VOCAB = 151_936;
const PER_PROMPT = 8;
const SCORE_PAIRS = 8; // reference stage: 8 pairs (16 items) per ScoreLogProbs

const { values: o } = parseArgs({ options: { prompts: { type: "string", default: "16" }, tokens: { type: "string", default: "16000" }, "prompt-tokens": { type: "string", default: "200" } } });
const [prompts, tokens, promptTokens] = [Number(o.prompts), Number(o.tokens), Number(o["prompt-tokens"])];
const cfg = ExperimentSchema.parse({ name: "bench", model: { source: "tiny-random-llama" }, data: { few_shot: [] } });

let s = 0x9e3779b9;
const rnd = () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), (s >>> 0) / 2 ** 32);
const ids = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * VOCAB));

const dir = mkdtempSync(join(tmpdir(), "pcot-reqbytes-"));
const journal = new Journal(join(dir, "journal.sqlite"), { dataPlane: "shards" });
for (let p = 0; p < prompts; p++) {
  const prompt = ids(promptTokens);
  journal.record(Array.from({ length: PER_PROMPT }, (_, k) => ({
    id: `it001/rollout/t${String(p).padStart(4, "0")}/${String(k).padStart(3, "0")}`, stage: "rollout", iteration: 1,
    result: { prompt_id: `t${p}`, sample: k, seed: k, text: "", token_ids: ids(tokens), prompt_token_ids: prompt, finish_reason: "stop", prompt_opens_think: false } satisfies SampleRecord,
  })));
}
// GRPO's behaviour log-probs, journaled as oldLogprobsStage does (float32 values, one per completion token).
journal.record(Array.from({ length: cfg.train.batch_size }, (_, k) => ({
  id: `it001/old/${k}`, stage: "old", iteration: 1, result: { logprobs: Array.from({ length: tokens }, () => Math.fround(-5 * rnd())) },
})));
const samples = journal.list<SampleRecord>("rollout", 1).map((r) => r.result);
const olds = journal.list<{ logprobs: number[] }>("old", 1).map((r) => r.result);
const pairs = Array.from({ length: prompts }, (_, p) => [samples[p * PER_PROMPT]!, samples[p * PER_PROMPT + 1]!] as const);
const fill = { refChosenLogp: -1, refRejectedLogp: -2, advantage: 0, weight: 1, oldLogprobs: [] as number[], refLogprobs: [] as number[] };

const requests = {
  score: (refs: boolean) => ScoreRequest.encode(ScoreRequest.fromPartial({
    items: pairs.slice(0, SCORE_PAIRS).flatMap(([c, r], i) => [scoreItemOf(`${i}c`, c, refs), scoreItemOf(`${i}r`, r, refs)]),
  })).finish(),
  "dpo step": (refs: boolean) => TrainStepRequest.encode(TrainStepRequest.fromPartial({
    examples: pairs.slice(0, cfg.train.batch_size).map(([c, r]): TrainExample => ({ ...pairIds(c, r, refs), ...fill })),
  })).finish(),
  // GRPO with kl_coef > 0 (kl_in: loss): behaviour and KL reference log-probs, two lists inline or two refs
  // (the bench stands the behaviour row in for the reference's: the same size).
  "grpo step": (refs: boolean) => TrainStepRequest.encode(TrainStepRequest.fromPartial({
    examples: samples.slice(0, cfg.train.batch_size).map((x, k): TrainExample => ({ ...completionIds(x, refs), ...fill, ...logprobsOf(olds[k]!, olds[k]!, refs) })),
  })).finish(),
};

console.log(`${prompts} prompts x ${PER_PROMPT} samples x ${tokens} completion tokens (+${promptTokens} prompt), train.batch_size ${cfg.train.batch_size}`);
console.log("| request | items | inline bytes | ref bytes | ratio | inline build+encode ms | ref build+encode ms |");
console.log("|---|---|---|---|---|---|---|");
for (const [name, build] of Object.entries(requests)) {
  const timed = (refs: boolean) => {
    build(refs); // warm up the JIT and the store's read cache equally
    const t = performance.now();
    const n = build(refs).length;
    return { n, ms: performance.now() - t };
  };
  const [a, b] = [timed(false), timed(true)];
  const items = name === "score" ? 2 * SCORE_PAIRS : cfg.train.batch_size;
  console.log(`| ${name} | ${items} | ${a.n.toLocaleString("en")} | ${b.n.toLocaleString("en")} | ${(a.n / b.n).toFixed(0)}x | ${a.ms.toFixed(0)} | ${b.ms.toFixed(1)} |`);
}
journal.close();
rmSync(dir, { recursive: true, force: true });
