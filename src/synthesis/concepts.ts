// Concept pools and concept-set samplers (PromptCoT 2.0, issue 7 item 1). A pool is built from concept
// sets (one per seed problem): frequencies, sparse co-occurrence counts and difficulty-level tags.
// PromptCoT's sampler draws the first concept by frequency and each next one from
// softmax((co-occurrence with the chosen + cosine to their mean embedding) / tau); see docs/SYNTHESIS.md.
import { createHash } from "node:crypto";
import fs from "node:fs";
import readline from "node:readline";
import { ConfigError } from "../config/errors.js";
import type { Journal } from "../experiment/journal.js";
import { rng, unitId } from "../experiment/ids.js";
import type { WorkerRpc } from "../rpc/worker-client.js";

export interface ConceptPool {
  concepts: string[];
  /** Number of concept sets (rows) each concept appears in. */
  freq: Float64Array | number[];
  /** Number of concept sets in which both a and b appear (0 when a === b). */
  cooc(a: number, b: number): number;
  /** Distinct difficulty-level tags, in first-seen order (empty when the pool has none). */
  levels: string[];
  /** Concept text → index. */
  index: Map<string, number>;
  /** The concepts that co-occur with a, and how often (sparse row of the co-occurrence matrix). */
  neighbours(a: number): ReadonlyMap<number, number>;
  /** How many concept sets the pool was built from. */
  sets: number;
}

export interface ConceptSet {
  concepts: string[];
  level?: string;
}

/** Accumulates concept sets one at a time, so a file is never held whole. */
class PoolBuilder {
  readonly concepts: string[] = [];
  readonly index = new Map<string, number>();
  readonly freq: number[] = [];
  readonly rows: Map<number, number>[] = [];
  readonly levels: string[] = [];
  sets = 0;

  add(set: ConceptSet): void {
    // A concept listed twice in one set counts once: frequency is "sets containing it".
    const ids = [...new Set(set.concepts.map((c) => this.id(c)))];
    for (const a of ids) {
      this.freq[a]! += 1;
      for (const b of ids) if (a !== b) this.rows[a]!.set(b, (this.rows[a]!.get(b) ?? 0) + 1);
    }
    if (set.level !== undefined && !this.levels.includes(set.level)) this.levels.push(set.level);
    this.sets++;
  }

  private id(concept: string): number {
    let i = this.index.get(concept);
    if (i === undefined) {
      i = this.concepts.length;
      this.index.set(concept, i);
      this.concepts.push(concept);
      this.freq.push(0);
      this.rows.push(new Map());
    }
    return i;
  }

  build(): ConceptPool {
    const rows = this.rows;
    const empty: ReadonlyMap<number, number> = new Map();
    return {
      concepts: this.concepts,
      freq: Float64Array.from(this.freq),
      cooc: (a, b) => rows[a]?.get(b) ?? 0,
      levels: this.levels,
      index: this.index,
      neighbours: (a) => rows[a] ?? empty,
      sets: this.sets,
    };
  }
}

export function conceptPoolFromSets(sets: ConceptSet[]): ConceptPool {
  const b = new PoolBuilder();
  for (const s of sets) b.add({ concepts: s.concepts.map((c) => c.trim()), level: s.level });
  return b.build();
}

const ROW_SHAPE = `each row is {"concept": "..."} or {"concepts": ["...", ...], "level": "..."} (level optional)`;

/** One JSONL row as a concept set, or a message saying what is wrong with it. */
export function parseConceptRow(text: string): ConceptSet | string {
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${(e as Error).message}); ${ROW_SHAPE}`;
  }
  if (typeof row !== "object" || row === null || Array.isArray(row)) return `not a JSON object; ${ROW_SHAPE}`;
  const r = row as Record<string, unknown>;
  if (r.level !== undefined && (typeof r.level !== "string" || !r.level.trim())) return `'level' must be a non-empty string when present`;
  const level = typeof r.level === "string" ? r.level.trim() : undefined;
  if (typeof r.concept === "string" && r.concept.trim()) return { concepts: [r.concept.trim()], level };
  if (Array.isArray(r.concepts)) {
    const bad = r.concepts.findIndex((c) => typeof c !== "string" || !c.trim());
    if (bad >= 0) return `'concepts[${bad}]' must be a non-empty string`;
    if (r.concepts.length === 0) return `'concepts' is empty; list at least one concept or drop the row`;
    return { concepts: (r.concepts as string[]).map((c) => c.trim()), level };
  }
  if ("concept" in r) return `'concept' must be a non-empty string`;
  return `no 'concept' or 'concepts' key; ${ROW_SHAPE}`;
}

/** Streams a JSONL concept pool; a bad row is a ConfigError naming file:line (exit 2). Blank lines are skipped. */
export async function readConceptPool(path: string): Promise<ConceptPool> {
  if (!fs.existsSync(path)) throw new ConfigError(`concept pool file not found; check the path`, path);
  const b = new PoolBuilder();
  const rl = readline.createInterface({ input: fs.createReadStream(path), crlfDelay: Infinity });
  let lineNo = 0;
  for await (const text of rl) {
    lineNo++;
    if (!text.trim()) continue;
    const set = parseConceptRow(text);
    if (typeof set === "string") {
      rl.close();
      throw new ConfigError(set, path, lineNo);
    }
    b.add(set);
  }
  if (b.sets === 0) throw new ConfigError(`concept pool has no rows; ${ROW_SHAPE}`, path);
  return b.build();
}

// ---- samplers -----------------------------------------------------------------------------------

export interface ConceptSampler {
  sample(seed: number): { concepts: string[]; level?: string };
}

/** rng() keeps 32 bits of its seed; fold the high bits of a 48-bit unit seed in so they still matter. */
function seededRng(seed: number): () => number {
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  return rng((seed >>> 0) ^ Math.imul(hi, 0x9e3779b1));
}

/** Index drawn with probability weights[i] / sum(weights). */
function drawWeighted(weights: ArrayLike<number>, r: () => number): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  let u = r() * total;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i]! <= 0) continue;
    last = i;
    u -= weights[i]!;
    if (u < 0) return i;
  }
  return last; // u landed on the float rounding of the total
}

function pickLevel(pool: ConceptPool, r: () => number): string | undefined {
  return pool.levels.length ? pool.levels[Math.floor(r() * pool.levels.length)] : undefined;
}

function checkSize(pool: ConceptPool, size: number): void {
  if (!Number.isInteger(size) || size < 1) throw new ConfigError(`concept set size must be a positive integer, got ${size}`);
  if (size > pool.concepts.length) {
    throw new ConfigError(`concept set size ${size} exceeds the pool's ${pool.concepts.length} distinct concepts; lower the size or add concepts`);
  }
}

/** The embeddings as unit rows of one flat matrix: a tight loop over it is several times faster than over row objects. */
interface UnitMatrix {
  data: Float32Array;
  dim: number;
}

function unitVectors(pool: ConceptPool, embeddings: Float32Array[]): UnitMatrix {
  if (embeddings.length !== pool.concepts.length) {
    throw new Error(`got ${embeddings.length} embeddings for ${pool.concepts.length} concepts`);
  }
  const dim = embeddings[0]?.length ?? 0;
  const data = new Float32Array(embeddings.length * dim);
  embeddings.forEach((e, i) => {
    if (e.length !== dim) throw new Error(`embedding ${i} has ${e.length} values, the first has ${dim}`);
    const n = l2(e) || 1;
    for (let d = 0; d < dim; d++) data[i * dim + d] = e[d]! / n;
  });
  return { data, dim };
}

function l2(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

/**
 * PromptCoT's sampler. Scores of the candidates not yet chosen: the co-occurrence counts summed over the
 * chosen concepts, plus the cosine between the candidate and the mean embedding of the chosen (0 without
 * embeddings); the next concept is drawn from softmax(score / tau).
 */
export function promptcotSampler(pool: ConceptPool, embeddings: Float32Array[] | null, o: { size: number; tau: number }): ConceptSampler {
  checkSize(pool, o.size);
  if (!(o.tau > 0)) throw new ConfigError(`concept sampling temperature tau must be > 0, got ${o.tau}`);
  const unit = embeddings ? unitVectors(pool, embeddings) : null;
  const n = pool.concepts.length;
  return {
    sample(seed) {
      const r = seededRng(seed);
      const chosen = [drawWeighted(pool.freq, r)];
      const score = new Float64Array(n);
      while (chosen.length < o.size) {
        nextScores(pool, unit, chosen, score);
        chosen.push(drawWeighted(softmax(score, o.tau), r));
      }
      return { concepts: chosen.map((i) => pool.concepts[i]!), level: pickLevel(pool, r) };
    },
  };
}

/** Fills `score` for the next draw; chosen concepts get -Infinity. */
function nextScores(pool: ConceptPool, unit: UnitMatrix | null, chosen: number[], score: Float64Array): void {
  score.fill(0);
  for (const c of chosen) for (const [j, count] of pool.neighbours(c)) score[j]! += count;
  if (unit) {
    const { data, dim } = unit;
    const mean = new Float32Array(dim);
    for (const c of chosen) for (let d = 0; d < dim; d++) mean[d]! += data[c * dim + d]!;
    const norm = l2(mean) || 1;
    for (let j = 0, off = 0; j < score.length; j++, off += dim) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += data[off + d]! * mean[d]!;
      score[j]! += dot / norm;
    }
  }
  for (const c of chosen) score[c] = -Infinity;
}

/** softmax(score / tau) with the max subtracted first: co-occurrence counts / 0.2 overflow exp() otherwise. */
export function softmax(score: ArrayLike<number>, tau: number): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < score.length; i++) max = Math.max(max, score[i]!);
  const out = new Float64Array(score.length);
  for (let i = 0; i < score.length; i++) out[i] = score[i] === -Infinity ? 0 : Math.exp((score[i]! - max) / tau);
  return out;
}

/** `size` distinct concepts, each set equally likely. */
export function uniformSampler(pool: ConceptPool, size: number): ConceptSampler {
  checkSize(pool, size);
  const n = pool.concepts.length;
  return {
    sample(seed) {
      const r = seededRng(seed);
      const picked = new Set<number>();
      while (picked.size < size) picked.add(Math.floor(r() * n)); // rejection: size is small next to n in practice
      return { concepts: [...picked].map((i) => pool.concepts[i]!), level: pickLevel(pool, r) };
    },
  };
}

/** Per concept, the share of draws that contain it, estimated from `draws` samples (seeds 0..draws-1 offset by `seed`). */
export function expectedInclusion(pool: ConceptPool, sampler: ConceptSampler, draws: number, seed = 0): Float64Array {
  const hits = new Float64Array(pool.concepts.length);
  for (let d = 0; d < draws; d++) for (const c of sampler.sample(seed + d).concepts) hits[pool.index.get(c)!]! += 1;
  return hits.map((h) => h / Math.max(draws, 1));
}

// ---- embeddings ---------------------------------------------------------------------------------

/** What embedConcepts needs; a SynthContext provides it as `{ journal, pool: ctx.pools.prompt }`. */
export interface EmbedContext {
  journal: Journal;
  pool: { size: number; run<T>(i: number, fn: (rpc: WorkerRpc) => Promise<T>): Promise<T> };
  /** Texts per Embed call and journal unit (default 64). */
  batchSize?: number;
  timeoutMs?: number;
  log?: (msg: string) => void;
}

export const EMBED_STAGE = "synth/embed";

interface EmbedUnit {
  count: number;
  dim: number;
  /** Float32 little-endian, row-major, base64: a quarter of JSON's size for the same floats. */
  vectors: string;
}

/** Embeds every concept through the Embed RPC, one journal unit per batch, so a resumed run re-embeds nothing. */
export async function embedConcepts(ctx: EmbedContext, pool: ConceptPool): Promise<Float32Array[]> {
  const size = ctx.batchSize ?? 64;
  const batches: { id: string; texts: string[] }[] = [];
  for (let start = 0, b = 0; start < pool.concepts.length; start += size, b++) {
    const texts = pool.concepts.slice(start, start + size);
    // The texts' hash is in the id: a changed pool file gets new units instead of stale vectors.
    const digest = createHash("sha256").update(JSON.stringify(texts)).digest("hex").slice(0, 12);
    batches.push({ id: unitId(0, EMBED_STAGE, b, digest), texts });
  }
  const todo = batches.filter((b) => !ctx.journal.has(b.id));
  if (todo.length) ctx.log?.(`embedding ${pool.concepts.length} concepts: ${todo.length} of ${batches.length} batches to do`);
  await Promise.all(
    Array.from({ length: Math.min(ctx.pool.size, todo.length) }, async (_, w) => {
      for (let k = w; k < todo.length; k += ctx.pool.size) await embedBatch(ctx, w, todo[k]!);
    }),
  );
  return batches.flatMap((b) => decodeUnit(ctx.journal.get<EmbedUnit>(b.id)!));
}

async function embedBatch(ctx: EmbedContext, worker: number, batch: { id: string; texts: string[] }): Promise<void> {
  const res = await ctx.pool.run(worker, (rpc) => rpc.embed({ texts: batch.texts }, ctx.timeoutMs ?? 300_000));
  const vectors = res.embeddings.map((e) => e.values);
  if (vectors.length !== batch.texts.length) {
    throw new Error(`Embed returned ${vectors.length} vectors for ${batch.texts.length} texts (unit ${batch.id})`);
  }
  const dim = vectors[0]?.length ?? 0;
  const flat = Float32Array.from(vectors.flat());
  const unit: EmbedUnit = { count: vectors.length, dim, vectors: Buffer.from(flat.buffer).toString("base64") };
  ctx.journal.record([{ id: batch.id, stage: EMBED_STAGE, iteration: 0, result: unit }]);
}

function decodeUnit(u: EmbedUnit): Float32Array[] {
  const bytes = Buffer.from(u.vectors, "base64");
  const flat = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return Array.from({ length: u.count }, (_, i) => flat.slice(i * u.dim, (i + 1) * u.dim));
}
