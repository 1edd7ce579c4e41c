// Provenance of synthesized problems: a content id, and the record that says where each problem came
// from (concepts, rationale, synthesizer weights, sampling seed) and what happened to it (filters, dedup).
import { createHash } from "node:crypto";

/** Whitespace collapsed, case kept: two generations that differ only in spacing are the same problem. */
export function normaliseProblem(text: string): string {
  return text.normalize("NFC").replace(/\s+/g, " ").trim();
}

/** sha256 of the normalised problem text, first 16 hex digits. */
export function problemId(text: string): string {
  return createHash("sha256").update(normaliseProblem(text)).digest("hex").slice(0, 16);
}

export interface Synthesizer {
  /** p's checkpoint directory (undefined = base weights) and its optimizer step count. */
  checkpoint: string | null;
  step: number;
  /** EM iteration that produced these weights (0 = warm start only). */
  em_iteration: number;
}

/** One journaled generation unit: what p wrote for one sampled concept set, parsed or not. */
export interface GenerationRecord {
  index: number;
  concepts: string[];
  level?: string;
  concept_seed: number;
  sampling_seed: number;
  synthesizer: Synthesizer;
  text: string;
  finish_reason: string;
  ok: boolean;
  reason?: string;
  /** Set when ok. */
  id?: string;
  rationale?: string;
  problem?: string;
}

export interface FilterOutcome {
  passed: string[];
  failed: { filter: string; reason: string }[];
}

export interface DedupOutcome {
  kept: boolean;
  /** "exact_duplicate" | "near_duplicate" | "contaminated" | "seed_duplicate" (proposer only); with the row or benchmark item it duplicates. */
  kind?: string;
  duplicate_of?: string;
  detail?: string;
}

/** The provenance of one kept or dropped problem, as written to artifacts and shown by `trace`. */
export interface Provenance {
  id: string;
  generation_unit: string;
  concepts: string[];
  level?: string;
  rationale: string;
  synthesizer: Synthesizer;
  concept_seed: number;
  sampling_seed: number;
  filters?: FilterOutcome;
  dedup?: DedupOutcome;
}

export function provenanceOf(unit: string, g: GenerationRecord): Provenance {
  if (!g.ok || !g.id) throw new Error(`generation ${unit} was dropped (${g.reason}); it has no problem id`);
  return {
    id: g.id,
    generation_unit: unit,
    concepts: g.concepts,
    level: g.level,
    rationale: g.rationale!,
    synthesizer: g.synthesizer,
    concept_seed: g.concept_seed,
    sampling_seed: g.sampling_seed,
  };
}
