#!/usr/bin/env node
// Entry point for `npx promptcot`: runs the TypeScript CLI through tsx, so there is no build step to go stale.
import { register } from "tsx/esm/api";
register();
await import("../src/cli/main.ts");
