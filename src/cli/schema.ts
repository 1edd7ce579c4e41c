// `promptcot schema`: the experiment JSON Schema, generated from the zod schema (never hand-edited).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { ExperimentSchema } from "../config/schema.js";

export function experimentJsonSchema(): string {
  return `${JSON.stringify(z.toJSONSchema(ExperimentSchema, { io: "input", unrepresentable: "any" }), null, 2)}\n`;
}

export function schemaCommand(out: string): number {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, experimentJsonSchema());
  process.stdout.write(`wrote ${out}\n`);
  return 0;
}
