// Majority voting over extracted answers, clustering by mathematical equivalence (PromptCoT 2.0 labels a
// synthetic prompt with the majority answer of 8 teacher samples). "1/2", "0.5" and "\frac{1}{2}" are one
// cluster; an answer is compared with the first member of each cluster, in input order.
import { compactForm, normalizeWithUnits } from "./latex-normalize.js";
import { type FullMathGrader, createMathGrader } from "./grader.js";

export interface VoteCluster {
  /** The cluster's first answer, as written. */
  answer: string;
  count: number;
  /** Indices into the input array. */
  members: number[];
}

export interface VoteResult {
  /** The answer of the largest cluster (earliest on ties), or null when nobody answered. */
  answer: string | null;
  /** Its size over the number of answers given (empty answers count as votes for nothing). */
  share: number;
  /** Largest first. */
  clusters: VoteCluster[];
}

export type Equivalence = Pick<FullMathGrader, "equivalent">;

export async function majorityVote(answers: ReadonlyArray<string | null | undefined>, grader?: Equivalence): Promise<VoteResult> {
  const own = grader ? null : createMathGrader();
  const g = grader ?? own!;
  try {
    const clusters: (VoteCluster & { key: string })[] = [];
    for (const [i, raw] of answers.entries()) {
      if (typeof raw !== "string") continue;
      const { norm, units } = normalizeWithUnits(raw);
      if (norm === "") continue;
      // "5 cm" and "5 m" normalize alike; their units keep them apart
      const key = `${compactForm(norm)}\u0000${units.join(",")}`;
      let home = clusters.find((c) => c.key === key);
      if (!home) {
        for (const c of clusters) {
          // a timeout or error is "not shown equal": the answer starts its own cluster
          if ((await g.equivalent(c.answer, raw)).verdict === "correct") {
            home = c;
            break;
          }
        }
      }
      if (home) {
        home.count++;
        home.members.push(i);
      } else clusters.push({ answer: raw, count: 1, members: [i], key });
    }
    clusters.sort((a, b) => b.count - a.count || a.members[0]! - b.members[0]!);
    const top = clusters[0];
    return {
      answer: top ? top.answer : null,
      share: top && answers.length ? top.count / answers.length : 0,
      clusters: clusters.map(({ key: _key, ...c }) => c),
    };
  } finally {
    await own?.close();
  }
}
