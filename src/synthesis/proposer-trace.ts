// What `promptcot trace ID` shows of a problem synthesized inside self-play (proposer.enabled): its
// generation units across iterations, their screening, and the policy's pass rate at each iteration.
import type { Journal } from "../experiment/journal.js";
import { unitId } from "../experiment/ids.js";
import type { GenerationRecord } from "./provenance.js";
import { P_GENERATE, P_SCREEN, PASSRATE, type PassRateRecord, type ScreenRow } from "./proposer-stages.js";

const iterationsOf = (journal: Journal, stage: string) => journal.countsByStage().filter((r) => r.stage === stage).map((r) => r.iteration);

/** Proposer generation units whose problem id `match`es (trace's id or prefix rule). */
export function proposerGenerations(journal: Journal, match: (id: string) => boolean): { unit: string; g: GenerationRecord }[] {
  return iterationsOf(journal, P_GENERATE).flatMap((it) =>
    journal.list<GenerationRecord>(P_GENERATE, it).filter((r) => r.result.id !== undefined && match(r.result.id)).map((r) => ({ unit: r.id, g: r.result })),
  );
}

/** The screening of one proposer generation unit (undefined for other units or before screening). */
export function proposerScreen(journal: Journal, unit: string): ScreenRow | undefined {
  const m = /^it(\d+)\/proposer\/generate\//.exec(unit);
  if (!m) return undefined;
  return journal.get<{ rows: ScreenRow[] }>(unitId(Number(m[1]), P_SCREEN))?.rows.find((r) => r.unit === unit);
}

/** "pass-rate history" lines: the policy's pass rate on the problem at every iteration it was rolled out. */
export function passRateLines(journal: Journal, id: string): string[] {
  const rows = iterationsOf(journal, PASSRATE).flatMap((it) => {
    const r = journal.get<PassRateRecord>(unitId(it, PASSRATE, id));
    return r ? [{ it, r }] : [];
  });
  if (rows.length === 0) return [];
  return [
    "",
    "pass-rate history (the policy's countable samples at each self-play iteration):",
    ...rows.map(({ it, r }) => `  iteration ${it}: ${r.pass_rate === null ? "no countable sample" : `${r.correct}/${r.counted} = ${(100 * r.pass_rate).toFixed(1)}%`} (${r.samples} samples)`),
  ];
}
