// Strict parsing of what the synthesis models write: each malformed shape is dropped with its own reason.
import { describe, expect, it } from "vitest";
import { SYNTH_TEMPLATE_DEFAULTS } from "../src/config/schema.js";
import { problemId } from "../src/synthesis/provenance.js";
import { generatedSeeds } from "../src/synthesis/seeds.js";
import { MARK, annotateInput, fallbackRationale, parseAnnotation, parseGeneration, parseRationale, promptTarget, trimToSentence, withSuffix } from "../src/synthesis/templates.js";

const good = promptTarget("Use the LCM of 4 and 6.", "Two lights blink every 4 and 6 seconds. When do they next blink together?");

describe("parseGeneration", () => {
  it("accepts the formatted target and returns both parts", () => {
    expect(parseGeneration(good, "stop")).toEqual({
      ok: true,
      rationale: "Use the LCM of 4 and 6.",
      problem: "Two lights blink every 4 and 6 seconds. When do they next blink together?",
    });
  });

  const cases: [string, string, string][] = [
    ["truncated", good, "length"],
    ["no_rationale_markers", good.replace(MARK.rationaleOpen, ""), "stop"],
    ["no_problem_markers", good.replace(MARK.problemClose, ""), "stop"],
    ["nested_or_repeated_markers", good + "\n" + MARK.problemOpen, "stop"],
    ["nested_or_repeated_markers", good.replace("LCM", `${MARK.conceptsOpen} LCM`), "stop"],
    ["markers_out_of_order", `${MARK.problemOpen}\nx\n${MARK.problemClose}\n${MARK.rationaleOpen}\nz\n${MARK.rationaleClose}`, "stop"],
    ["text_outside_markers", `Sure! ${good}`, "stop"],
    ["text_outside_markers", `${good}\nThe answer is 12.`, "stop"],
    ["empty_rationale", promptTarget(" ", "A problem."), "stop"],
    ["empty_problem", promptTarget("A rationale.", "  \n "), "stop"],
  ];
  it.each(cases)("drops %s", (reason, text, finish) => {
    expect(parseGeneration(text, finish)).toEqual({ ok: false, reason });
  });
});

describe("parseRationale / parseAnnotation", () => {
  it("a rationale ends at its close marker or at EOS; cut by the token limit it is truncated", () => {
    expect(parseRationale(`An idea.\n${MARK.rationaleClose}\nrest`, "stop")).toEqual({ ok: true, rationale: "An idea." });
    expect(parseRationale("An idea.", "stop")).toEqual({ ok: true, rationale: "An idea." });
    expect(parseRationale("An idea that goes on", "length")).toEqual({ ok: false, reason: "truncated" });
    expect(parseRationale(`  ${MARK.rationaleClose}`, "stop")).toEqual({ ok: false, reason: "empty_rationale" });
  });

  const o = { minRationaleChars: 10, maxConcepts: 3 };
  it("reads concept lines and the rationale when concepts are unknown", () => {
    const text = `- ratios\n2. fractions\n${MARK.conceptsClose}\n${MARK.rationaleOpen}\nScale a known ratio by k.\n${MARK.rationaleClose}`;
    expect(parseAnnotation(text, "stop", o)).toEqual({ ok: true, concepts: ["ratios", "fractions"], rationale: "Scale a known ratio by k." });
  });
  it("keeps known concepts and takes only the rationale", () => {
    expect(parseAnnotation("Pick two coprime periods.", "stop", { ...o, known: ["LCM"] })).toEqual({ ok: true, concepts: ["LCM"], rationale: "Pick two coprime periods." });
  });
  it.each([
    ["no_concepts_markers", "ratios\nThe idea is...", "stop"],
    ["truncated", "ratios\nfractions", "length"],
    ["no_concepts", `\n${MARK.conceptsClose}\n${MARK.rationaleOpen}\nA long enough idea.`, "stop"],
    ["too_many_concepts", `a\nb\nc\nd\n${MARK.conceptsClose}\n${MARK.rationaleOpen}\nA long enough idea.`, "stop"],
    ["text_outside_markers", `a\n${MARK.conceptsClose}\nhello\n${MARK.rationaleOpen}\nA long enough idea.`, "stop"],
    ["too_short", `a\n${MARK.conceptsClose}\n${MARK.rationaleOpen}\nshort`, "stop"],
  ])("drops an annotation: %s", (reason, text, finish) => {
    expect(parseAnnotation(text, finish, o)).toEqual({ ok: false, reason });
  });
});

describe("templates, ids and seeds", () => {
  it("instructions come from config; the annotator input ends with the marker it must continue", () => {
    const t = { ...SYNTH_TEMPLATE_DEFAULTS, annotate: "Q: {problem}|{ask}|{concepts_block}" };
    expect(annotateInput(t, "What is 2+2?", ["addition"])).toBe(`Q: What is 2+2?|${t.annotate_ask_rationale}|Concepts:\n- addition\n\n${MARK.rationaleOpen}\n`);
    expect(annotateInput(t, "What is 2+2?").endsWith(`${MARK.conceptsOpen}\n`)).toBe(true);
    expect(withSuffix(t, "math", "Find x.")).toBe(`Find x.\n\n${t.math_suffix}`);
  });

  it("a fallback rationale never contains the problem text: z must not copy x (issue 19)", () => {
    for (const s of generatedSeeds(7, 24)) {
      const z = fallbackRationale(SYNTH_TEMPLATE_DEFAULTS, s.concepts!);
      expect(z).toContain(s.concepts![0]);
      expect(z).not.toContain(s.prompt);
      expect(z).not.toContain("{problem}");
    }
    // a template that asks for the problem is refused at config load (see synthesis-config.test.ts)
    expect(() => fallbackRationale({ ...SYNTH_TEMPLATE_DEFAULTS, fallback_rationale: "Use {concepts_inline}: {problem}" }, ["ratios"])).toThrow(/fallback_rationale.*\{problem\}/);
  });

  it("the problem id is a 16-hex content hash, blind to whitespace only", () => {
    expect(problemId("Find  x.\n")).toMatch(/^[0-9a-f]{16}$/);
    expect(problemId("Find  x.\n")).toBe(problemId("Find x."));
    expect(problemId("Find x.")).not.toBe(problemId("Find y."));
  });

  it("generated seeds are deterministic, carry concepts and integer answers, and cover every family", () => {
    const a = generatedSeeds(3, 24);
    expect(generatedSeeds(3, 24)).toEqual(a);
    expect(new Set(a.map((s) => s.id)).size).toBe(24);
    for (const s of a) {
      expect(s.concepts!.length).toBeGreaterThan(0);
      expect(s.answer).toMatch(/^\d+$/);
    }
    expect(new Set(a.flatMap((s) => s.concepts)).size).toBeGreaterThanOrEqual(15);
  });
});

describe("trimToSentence", () => {
  it("cuts a truncated rationale back to its last complete sentence", () => {
    expect(trimToSentence("Pick two periods. Then ask when they meet. The numbers are cho")).toBe("Pick two periods. Then ask when they meet.");
    expect(trimToSentence("no sentence end here")).toBeUndefined();
    expect(trimToSentence(`One. ${MARK.problemOpen} Two.`)).toBeUndefined();
    expect(trimToSentence("Version 2.5 is used")).toBeUndefined();
  });
});

describe("trimToSentence on a weak annotator's output", () => {
  it("a numbered list is not a sentence; an echoed marker fragment is dropped", () => {
    expect(trimToSentence("<!-- 1. 1. 2. 3. 4. 5. 6. 7. 8. 9")).toBeUndefined();
    expect(trimToSentence("<!-- \nIt needs the LCM. Then the tim")).toBe("It needs the LCM.");
  });
});
