// Deterministic unit ids and seeds: the same run config always names and seeds the same units,
// which is what makes a resumed run produce exactly the samples an uninterrupted one would.
import { createHash } from "node:crypto";

export const pad = (n: number, width = 3): string => String(n).padStart(width, "0");

export const iterTag = (iteration: number): string => `it${pad(iteration)}`;

export function unitId(iteration: number, stage: string, ...parts: (string | number)[]): string {
  return [iterTag(iteration), stage, ...parts.map((p) => (typeof p === "number" ? pad(p) : p))].join("/");
}

/** A 48-bit seed (exact in a JS number and in proto int64) derived from the run seed and a unit's coordinates. */
export function unitSeed(runSeed: number, ...parts: (string | number)[]): number {
  const digest = createHash("sha256").update([runSeed, ...parts].join("/")).digest();
  return digest.readUIntBE(0, 6);
}

/** Small seeded PRNG (mulberry32) for data generation and shuffles; not for anything security-related. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  const r = rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
