// Moving a sample row's bulky fields into shards and back. A detached row keeps its small fields and gains
// `$shard` (its record: text and completion token ids) and `$prompt` (the prompt's token ids, one record per
// distinct prompt of a stage and iteration, shared by its samples). Hydrated rows have the original fields
// again as getters that decode from the shard on access, so a pass that reads only the text never decodes
// token ids and nothing bulky stays referenced after the pass moves on.
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { SampleStore, ShardRef, PutItem } from "./sample-store.js";
import { Floats, type SectionValue } from "./shard-format.js";

export interface PayloadRefs {
  $shard?: ShardRef;
  $prompt?: ShardRef;
  /** Which of the sample's own fields are in its record (text, token_ids). */
  $fields?: string[];
  /** len(token_ids), for SQL readers (the dashboard's token throughput) that cannot open the shard. */
  $token_count?: number;
}

interface Row {
  id: string;
  stage: string;
  iteration: number;
  result: unknown;
}

const SAMPLE_FIELDS = ["text", "token_ids"] as const;
/** Per-token float arrays (GRPO's behaviour log-probs, `old` rows). */
const FLOAT_FIELDS = ["logprobs"] as const;
const PROMPT_FIELD = "prompt_token_ids";

const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === "number");

/**
 * Writes the bulky fields of `rows` (one shard append, one fsync) and returns the rows to journal.
 * `promptRef` finds a prompt record already written; new prompt records are added to `newPrompts`.
 */
export function detachRows(
  store: SampleStore, stage: string, iteration: number, rows: Row[],
  promptRef: (key: string) => string | undefined, newPrompts: Map<string, string>,
): Row[] {
  const items: PutItem[] = [];
  const plans = rows.map((r) => {
    const res = r.result as Record<string, unknown>;
    const sections: Record<string, SectionValue> = {};
    for (const f of SAMPLE_FIELDS) if (typeof res[f] === "string" || isIds(res[f])) sections[f] = res[f] as SectionValue;
    for (const f of FLOAT_FIELDS) if (isIds(res[f])) sections[f] = new Floats(res[f]);
    const sampleItem = items.push({ key: r.id, kind: "sample", sections }) - 1;
    let prompt: { key: string; item?: number; ref?: string } | undefined;
    if (isIds(res[PROMPT_FIELD])) {
      const key = promptKey(stage, iteration, res.prompt_id, res[PROMPT_FIELD]);
      const known = newPrompts.get(key) ?? promptRef(key);
      prompt = known ? { key, ref: known } : { key, item: items.push({ key, kind: "prompt", sections: { [PROMPT_FIELD]: res[PROMPT_FIELD] } }) - 1 };
      if (!known) newPrompts.set(key, "pending");
    }
    return { r, res, sections, sampleItem, prompt };
  });
  const refs = store.put(stage, iteration, items);
  return plans.map(({ r, res, sections, sampleItem, prompt }) => {
    const rest: Record<string, unknown> & PayloadRefs = {};
    for (const [k, v] of Object.entries(res)) if (!(k in sections) && !(prompt && k === PROMPT_FIELD)) rest[k] = v;
    rest.$shard = refs[sampleItem]!;
    rest.$fields = Object.keys(sections);
    if (Array.isArray(sections.token_ids)) rest.$token_count = sections.token_ids.length;
    if (prompt) {
      if (prompt.item !== undefined) newPrompts.set(prompt.key, JSON.stringify(refs[prompt.item]));
      rest.$prompt = JSON.parse(prompt.ref && prompt.ref !== "pending" ? prompt.ref : newPrompts.get(prompt.key)!) as ShardRef;
    }
    return { ...r, result: rest };
  });
}

/** Prompts are shared only by identical token ids, so two templates of one prompt never mix. */
function promptKey(stage: string, iteration: number, promptId: unknown, ids: number[]): string {
  const h = createHash("sha256").update(Buffer.from(Uint32Array.from(ids).buffer)).digest("hex").slice(0, 32);
  return `${stage}|${iteration}|${String(promptId ?? "")}|${h}`;
}

/** Where one id field of a hydrated row lives: a record of a shard file (absolute path) and its section. */
export interface FieldRef {
  file: string;
  offset: number;
  length: number;
  crc32: number;
  section: string;
}

const REFS = Symbol("shard refs");

/**
 * The shard record holding `field` of a row read from the journal, for a worker that reads it itself;
 * undefined when the row keeps it inline (rows written by the inline data plane, or not a shard field).
 */
export function fieldRef(row: object, field: "token_ids" | "prompt_token_ids" | "logprobs"): FieldRef | undefined {
  return (row as { [REFS]?: (f: string) => FieldRef | undefined })[REFS]?.(field);
}

function refsOf(store: SampleStore, r: PayloadRefs): (field: string) => FieldRef | undefined {
  return (field) => {
    const ref = field === PROMPT_FIELD ? r.$prompt : r.$fields?.includes(field) ? r.$shard : undefined;
    return ref && { file: resolve(store.root, ref.f), offset: ref.o, length: ref.n, crc32: ref.c, section: field };
  };
}

/** The row's result with its bulky fields back, decoded from the shard when read. */
export function hydrate<T>(store: SampleStore, r: T & PayloadRefs): T {
  const { $shard, $prompt, $fields, $token_count: _, ...rest } = r;
  const out = rest as Record<string, unknown>;
  // Not enumerable: copies, JSON and equality see exactly the record the stage wrote.
  Object.defineProperty(out, REFS, { value: refsOf(store, { $shard, $prompt, $fields }), enumerable: false });
  for (const f of $fields ?? []) {
    Object.defineProperty(out, f, { enumerable: true, configurable: true, get: () => store.section($shard!, f) });
  }
  if ($prompt) Object.defineProperty(out, PROMPT_FIELD, { enumerable: true, configurable: true, get: () => store.section($prompt, PROMPT_FIELD) });
  return out as T;
}

/** A row's stored JSON with shard-held fields read back in (for readers of the SQLite file: tests, dashboard). */
export function inlineJson(store: SampleStore, json: string): string {
  const r = JSON.parse(json) as PayloadRefs;
  return r.$shard ? JSON.stringify(hydrate(store, r)) : json;
}
