// EM figures comparable across iterations (issue 19): on a fixed set of (c, x), chosen once per run and
// journaled, after warm start (e = 0) and after each EM iteration e, with p_e and q_e the models then held:
//   - NLL per token of x's content (the problem markers excluded) under p_e given q_e's greedy z;
//   - the same given the fixed cold-start z;
//   - a lower bound on log p_e(x | c): logmeanexp_k [log p_e(z_k, x | c) − log q_e(z_k | c, x)], z_k ~ q_e
//     at temperature 1 (so q_e is the proposal's density); a malformed sample has weight 0, which keeps the
//     estimate a lower bound in expectation (Jensen). This is the quantity EM should raise.
// One journal unit per iteration, computed whole (the set is small); a resume redoes an unfinished one.
import { unitId, unitSeed } from "../experiment/ids.js";
import { triples, type Triple } from "./cold-start.js";
import type { SynthContext } from "./context.js";
import { MARK, parseRationale, promptInput, promptTargetParts, rationaleInput, rationaleTarget } from "./templates.js";
import { generateEach, tokenizeParts, type GenItem, type Sampling } from "./worker-io.js";

export const TRACK_SET = "synth/em/track-set";
export const TRACK = "synth/em/track";
const DEADLINE_MS = 60 * 60 * 1000;
const SCORE_BATCH = 32;

export interface TrackItem {
  seed_id: string;
  /** Content tokens of x (between the problem markers). */
  n_content: number;
  greedy_ok: boolean;
  nll_greedy: number | null;
  nll_cold: number;
  /** Lower bound on log p(x | c) in nats; null when no sample was well-formed. */
  bound: number | null;
  samples_ok: number;
  greedy_z: string | null;
  /** Each sample: its rationale with log p(z, x | c) and log q(z | c, x); null = malformed. */
  samples: ({ z: string; logp: number; logq: number } | null)[];
}

export interface EmTrack {
  iteration: number;
  items: number;
  /** z samples per item for the bound. */
  samples: number;
  samples_ok: number;
  greedy_malformed: number;
  mean_nll_greedy: number | null;
  mean_nll_cold: number | null;
  mean_bound: number | null;
  /** Items whose bound is defined (at least one well-formed sample); mean_bound is over these. */
  bound_items: number;
  per_item: TrackItem[];
}

/** log( (1/K) Σ_k exp(w_k) ), a null weight counting as exp(−∞) = 0; null when every weight is null. */
export function logMeanExp(ws: (number | null)[]): number | null {
  const ok = ws.filter((w): w is number => w !== null);
  if (ok.length === 0) return null;
  const m = Math.max(...ok);
  return m + Math.log(ok.reduce((s, w) => s + Math.exp(w - m), 0)) - Math.log(ws.length);
}

/**
 * [start, end) of x's content tokens in the problem block's ids: the tokens left after the longest prefix
 * equal to the open marker's ids and the longest suffix equal to the close marker's ids. A token that merges
 * a marker with x at a boundary does not match and counts as content (at most one per side).
 */
export function contentSpan(block: number[], open: number[], close: number[]): [number, number] {
  let s = 0;
  while (s < open.length && s < block.length && block[s] === open[s]) s++;
  let e = block.length;
  while (block.length - e < close.length && e > s && block[e - 1] === close[close.length - 1 - (block.length - e)]) e--;
  return [s, e];
}

/** The tracked seed ids: chosen once per run (a seeded order of the triples, first `count`), journaled. */
export function trackSet(ctx: SynthContext): string[] {
  const id = unitId(0, TRACK_SET);
  const have = ctx.journal.get<{ seed_ids: string[] }>(id);
  if (have) return have.seed_ids;
  const key = (s: string) => unitSeed(ctx.cfg.seed, TRACK_SET, s);
  const ids = Array.from(triples(ctx), (t) => t.seed_id)
    .sort((a, b) => key(a) - key(b) || (a < b ? -1 : 1))
    .slice(0, ctx.cfg.synthesis.em.track.count);
  ctx.journal.record([{ id, stage: TRACK_SET, iteration: 0, result: { seed_ids: ids } }]);
  return ids;
}

/** Computes and journals iteration e's tracked figures (once), writes them to metrics; returns them. */
export async function trackIteration(ctx: SynthContext, e: number): Promise<EmTrack | undefined> {
  const tr = ctx.cfg.synthesis.em.track;
  if (tr.count === 0) return undefined;
  const id = unitId(e, TRACK);
  const have = ctx.journal.get<EmTrack>(id);
  if (have) return have;
  const chosen = new Set(trackSet(ctx));
  const items = Array.from(triples(ctx)).filter((t) => chosen.has(t.seed_id));
  const samples = await sampleRationales(ctx, e, items);
  const per_item = await scoreItems(ctx, items, samples);
  const rec = summarize(e, tr.samples, per_item);
  ctx.journal.record([{ id, stage: TRACK, iteration: e, result: rec }]);
  const { per_item: _, ...figures } = rec;
  ctx.metrics.write({ kind: "em_track", ...figures });
  const f = (x: number | null) => (x === null ? "n/a" : x.toFixed(3));
  ctx.log(`EM ${e} tracked on ${rec.items} fixed (c, x): NLL(x content)/token given greedy z ${f(rec.mean_nll_greedy)}, given cold-start z ${f(rec.mean_nll_cold)}; ` +
    `bound on log p(x | c) ${f(rec.mean_bound)} nats (${rec.samples_ok}/${rec.items * rec.samples} samples well-formed)`);
  return rec;
}

/** Every journaled tracking unit, iteration 0 upwards. */
export function readTrack(ctx: SynthContext): EmTrack[] {
  const out: EmTrack[] = [];
  for (let e = 0; e <= ctx.cfg.synthesis.em.iterations; e++) {
    const r = ctx.journal.get<EmTrack>(unitId(e, TRACK));
    if (r) out.push(r);
  }
  return out;
}

interface Drawn {
  greedy: string | null;
  /** null: malformed sample. */
  z: (string | null)[];
}

/** q_e's greedy rationale and `track.samples` rationales at temperature 1 per item. */
async function sampleRationales(ctx: SynthContext, e: number, items: Triple[]): Promise<Map<string, Drawn>> {
  const em = ctx.cfg.synthesis.em;
  const base: Sampling = { ...em.sampling, top_p: 1 };
  const input = (t: Triple) => rationaleInput(ctx.cfg.synthesis.templates, t.concepts, t.problem);
  const out = new Map<string, Drawn>(items.map((t) => [t.seed_id, { greedy: null, z: [] }]));
  const run = async (tag: string, s: Sampling, n: number, put: (d: Drawn, z: (string | null)[]) => void) => {
    const gen: GenItem[] = items.map((t) => ({ id: t.seed_id, text: input(t), seeds: Array.from({ length: n }, (_, k) => unitSeed(ctx.cfg.seed, TRACK, tag, t.seed_id, k)) }));
    await generateEach(ctx.pools.rationale, ctx.journal, `${TRACK}/${tag}`, gen, s, () => false, async (it, got) => {
      put(out.get(it.id)!, got.map((g) => { const p = parseRationale(g.text, g.finishReason); return p.ok ? p.rationale : null; }));
    });
  };
  await run("greedy", { ...base, temperature: 0 }, 1, (d, [z]) => (d.greedy = z ?? null));
  // Seeds independent of e: common random numbers across iterations.
  await run("sample", { ...base, temperature: 1 }, em.track.samples, (d, z) => (d.z = z));
  return out;
}

/** Scores every z under p (joint, and x's content given z) and the samples under q; per-item figures. */
async function scoreItems(ctx: SynthContext, items: Triple[], drawn: Map<string, Drawn>): Promise<TrackItem[]> {
  const tpl = ctx.cfg.synthesis.templates;
  const pEntries: { id: string; t: Triple; z: string }[] = [];
  const qEntries: { id: string; t: Triple; z: string }[] = [];
  for (const t of items) {
    const d = drawn.get(t.seed_id)!;
    pEntries.push({ id: `${t.seed_id}/cold`, t, z: t.rationale });
    if (d.greedy !== null) pEntries.push({ id: `${t.seed_id}/greedy`, t, z: d.greedy });
    d.z.forEach((z, k) => {
      if (z === null) return;
      pEntries.push({ id: `${t.seed_id}/${k}`, t, z });
      qEntries.push({ id: `${t.seed_id}/${k}`, t, z });
    });
  }
  const pTok = await tokenizeParts(ctx.pools.prompt, [
    { id: "markers", text: promptInput(tpl, ["-"]), parts: [`${MARK.problemOpen}\n`, `\n${MARK.problemClose}`], appendEos: false },
    ...pEntries.map((x) => { const parts = promptTargetParts(x.z, x.t.problem); return { id: x.id, text: promptInput(tpl, x.t.concepts, x.t.level), parts: [parts.rationale, parts.problem], appendEos: false }; }),
  ]);
  const [open, close] = pTok.get("markers")!.parts as [number[], number[]];
  const pScore = await scoreAll(ctx, "prompt", pEntries.map((x) => { const k = pTok.get(x.id)!; return { id: x.id, prompt: k.prompt, completion: [...k.parts[0]!, ...k.parts[1]!] }; }));
  const qTok = await tokenizeParts(ctx.pools.rationale, qEntries.map((x) => ({ id: x.id, text: rationaleInput(tpl, x.t.concepts, x.t.problem), parts: [rationaleTarget(x.z)], appendEos: false })));
  const qScore = await scoreAll(ctx, "rationale", qEntries.map((x) => { const k = qTok.get(x.id)!; return { id: x.id, prompt: k.prompt, completion: k.parts[0]! }; }));
  // NLL per content token of x given the entry's z, and the content-token count.
  const contentNll = (id: string): { nll: number; n: number } => {
    const k = pTok.get(id)!;
    const nz = k.parts[0]!.length;
    const [s, e] = contentSpan(k.parts[1]!, open, close);
    const lp = pScore.get(id)!.tokenLogprobs.slice(nz + s, nz + e);
    return { nll: -lp.reduce((a, b) => a + b, 0) / Math.max(lp.length, 1), n: lp.length };
  };
  return items.map((t) => {
    const d = drawn.get(t.seed_id)!;
    const cold = contentNll(`${t.seed_id}/cold`);
    const terms = d.z.map((z, k) => (z === null ? null : { z, logp: pScore.get(`${t.seed_id}/${k}`)!.sumLogprob, logq: qScore.get(`${t.seed_id}/${k}`)!.sumLogprob }));
    const w = terms.map((x) => (x === null ? null : x.logp - x.logq));
    return {
      seed_id: t.seed_id, n_content: cold.n, greedy_ok: d.greedy !== null,
      nll_greedy: d.greedy !== null ? contentNll(`${t.seed_id}/greedy`).nll : null,
      nll_cold: cold.nll, bound: logMeanExp(w), samples_ok: w.filter((x) => x !== null).length, greedy_z: d.greedy, samples: terms,
    };
  });
}

async function scoreAll(ctx: SynthContext, role: "prompt" | "rationale", entries: { id: string; prompt: number[]; completion: number[] }[]) {
  const out = new Map<string, { sumLogprob: number; tokenLogprobs: number[] }>();
  for (let i = 0; i < entries.length; i += SCORE_BATCH) {
    const chunk = entries.slice(i, i + SCORE_BATCH);
    const res = await ctx.pools[role].run(0, (rpc) =>
      rpc.score({ items: chunk.map((x) => ({ id: x.id, promptTokenIds: x.prompt, completionTokenIds: x.completion })), returnTokenLogprobs: true }, DEADLINE_MS),
    );
    for (const r of res.results) out.set(r.id, r);
  }
  return out;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

function summarize(e: number, samples: number, per: TrackItem[]): EmTrack {
  const bounds = per.flatMap((i) => (i.bound === null ? [] : [i.bound]));
  return {
    iteration: e, items: per.length, samples, samples_ok: per.reduce((s, i) => s + i.samples_ok, 0),
    greedy_malformed: per.filter((i) => !i.greedy_ok).length,
    mean_nll_greedy: mean(per.flatMap((i) => (i.nll_greedy === null ? [] : [i.nll_greedy]))),
    mean_nll_cold: mean(per.map((i) => i.nll_cold)),
    mean_bound: mean(bounds), bound_items: bounds.length, per_item: per,
  };
}
