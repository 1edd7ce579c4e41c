"""Reference for bench/dedup.ts: PromptCoT 2.0's dedup rule with datasketch (MinHash, 128 permutations;
MinHashLSH at the same threshold and band layout as ours; candidates confirmed by exact Jaccard on the same
word sets). Exact duplicates first (lower-case, whitespace collapsed), as `promptcot dedup` does.
Writes the kept rows (verbatim, in order) and prints {"rows", "kept", "seconds"} as JSON.
Usage: python bench/dedup_reference.py --in FILE --out FILE [--threshold 0.8] [--bands 25 --rows 5]
"""
import argparse
import json
import re
import sys
import time

from datasketch import MinHash, MinHashLSH

# The same text rules as src/synthesis/dedup/text.ts.
BOILERPLATE = [
    re.compile(r"Please reason step by step,? and put your final answer within \\boxed\{+\}+\.?", re.I),
    re.compile(r"You will be given a question \(problem specification\) and will generate a correct Python program "
               r"that matches the specification and passes all tests\.", re.I),
    re.compile(r"Read the inputs from stdin,? solve the problem and write the answer to stdout[\s\S]*?# YOUR CODE HERE\s*```", re.I),
]
TOKEN = re.compile(r"[^\W_]+")


def problem_text(text):
    t = text
    i = t.find("<|im_start|>user")
    if i >= 0:
        t = t[i + len("<|im_start|>user"):]
        j = t.find("<|im_end|>")
        t = t[:j] if j >= 0 else t
    i = t.find("<｜User｜>")
    if i >= 0:
        t = t[i + len("<｜User｜>"):]
        j = t.find("<｜Assistant｜>")
        t = t[:j] if j >= 0 else t
    t = re.sub(r"^\s*Question:\s*", "", t)
    for b in BOILERPLATE:
        t = b.sub(" ", t)
    return t


def word_set(text):
    return {w for w in TOKEN.findall(problem_text(text).lower()) if len(w) >= 4 and not all("0" <= c <= "9" for c in w)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--field", default="prompt")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--bands", type=int, default=25)
    ap.add_argument("--rows", type=int, default=5)
    a = ap.parse_args()
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=a.threshold, num_perm=128, params=(a.bands, a.rows))
    exact, sets = set(), {}
    rows = kept = 0
    with open(a.inp, encoding="utf-8") as f, open(a.out, "w", encoding="utf-8") as out:
        for line in f:
            if not line.strip():
                continue
            text = json.loads(line)[a.field]
            key = " ".join(text.lower().split())
            i = rows
            rows += 1
            if key in exact:
                continue
            words = word_set(text)
            if words:
                m = MinHash(num_perm=128)
                m.update_batch([w.encode("utf-8") for w in words])
                if any(len(words & sets[c]) / len(words | sets[c]) >= a.threshold for c in lsh.query(m)):
                    continue
                lsh.insert(i, m)
                sets[i] = words
            exact.add(key)
            kept += 1
            out.write(line if line.endswith("\n") else line + "\n")
    json.dump({"rows": rows, "kept": kept, "seconds": time.perf_counter() - t0}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
