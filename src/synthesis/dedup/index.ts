// Dedup and decontamination of problem sets (PromptCoT 2.0's rules, with numbers and expressions compared by default); see docs/SYNTHESIS.md.
export { Deduplicator, dedupRows } from "./dedup.js";
export type { DedupOptions, DedupStats, DropReason, RowRef, Verdict, DedupItem } from "./dedup.js";
export { BenchmarkIndex, NGRAM } from "./decontaminate.js";
export type { BenchmarkItem, BenchmarkRef, Contamination } from "./decontaminate.js";
export { chooseBands, lshRecall, jaccardSorted, NUM_PERM } from "./minhash.js";
export { exactKey, problemText, stripChatTemplate, WORD_RULES } from "./text.js";
export type { WordRule } from "./text.js";
export { dedupJsonlFile, loadBenchmarks, DedupInputError } from "./file.js";
export type { DedupFileOptions, DedupFileSummary } from "./file.js";
