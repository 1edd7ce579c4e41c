// The skeleton's math grader: the final answer after the last </think>, the last balanced \boxed{...},
// exact or numeric comparison. Bounded string work only, so it is safe in-process.
// The full checker (src/verify/math) sits behind the same MathGrader interface.
import type { MathGrader, MathVerdict } from "./types.js";

const MAX_INPUT = 100_000;

/** Contents of the last \boxed{...} (or \fbox) with balanced braces, or null. */
export function lastBoxed(text: string): string | null {
  const re = /\\(?:boxed|fbox)\s*\{/g;
  let found: string | null = null;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let depth = 1;
    let i = m.index + m[0].length;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}") depth--;
    }
    if (depth === 0) found = text.slice(m.index + m[0].length, i - 1);
  }
  return found;
}

export function afterThink(text: string): string {
  const k = text.lastIndexOf("</think>");
  return k >= 0 ? text.slice(k + "</think>".length) : text;
}

function normalize(s: string): string {
  return s
    .replace(/\\(?:text|mathrm)\{([^{}]*)\}/g, "$1")
    .replace(/\\[,!; ]|\$|\s+/g, "")
    .replace(/^\\?\(|\\?\)$/g, "")
    .replace(/(?<=\d),(?=\d{3}\b)/g, "")
    .replace(/\.$/, "");
}

function referenceAnswer(ref: string): string {
  const hash = ref.lastIndexOf("####");
  if (hash >= 0) return ref.slice(hash + 4).trim();
  return lastBoxed(ref) ?? ref.trim();
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)$/;

export function basicEquivalent(pred: string, ref: string): boolean {
  const a = normalize(pred);
  const b = normalize(ref);
  if (!a || !b) return false;
  if (a === b) return true;
  // Numbers compare by exact decimal value: strip leading/trailing zeros, never a tolerance.
  if (NUMBER.test(a) && NUMBER.test(b)) return canonicalDecimal(a) === canonicalDecimal(b);
  return false;
}

function canonicalDecimal(s: string): string {
  let sign = "";
  if (s[0] === "-" || s[0] === "+") {
    sign = s[0] === "-" ? "-" : "";
    s = s.slice(1);
  }
  let [int = "", frac = ""] = s.split(".");
  int = int.replace(/^0+/, "") || "0";
  frac = frac.replace(/0+$/, "");
  const body = frac ? `${int}.${frac}` : int;
  return body === "0" ? "0" : sign + body;
}

export function gradeBasic(completion: string, reference: string): MathVerdict {
  if (completion.length > MAX_INPUT) return { verdict: "error", extracted: null, reason: "completion too long" };
  const extracted = lastBoxed(afterThink(completion));
  if (extracted === null || !extracted.trim()) return { verdict: "no_answer", extracted: null };
  const ref = referenceAnswer(reference);
  if (!ref) return { verdict: "error", extracted, reason: "empty reference" };
  return { verdict: basicEquivalent(extracted, ref) ? "correct" : "incorrect", extracted };
}

export function createBasicMathGrader(): MathGrader {
  return {
    grade: async (completion, reference) => gradeBasic(completion, reference),
    close: async () => {},
  };
}
