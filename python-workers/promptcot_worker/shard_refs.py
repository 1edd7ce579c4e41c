"""Token ids a request names by shard record instead of carrying them (docs/DATA_PLANE.md "Workers read shards").

A worker on the controller's filesystem reads the records itself, so the controller does not push every
token of a training batch through gRPC. Refs resolve to plain id lists before the model code runs: scoring
and training have one path whatever the ids came from.

The format is docs/DATA_PLANE.md's; tools/read_shards.py decodes it too, but must stay usable without this
package (and this package ships to Ray nodes without tools/), so the few lines of decoding live in both and
python-workers/tests/test_shard_refs.py checks they agree on the committed v1 fixture.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from typing import Any

import numpy as np

MAGIC = b"PCSHARD\0"
READS_VERSIONS = (1,)
HEADER_BYTES = 16
FRAME_BYTES = 8
log = logging.getLogger("promptcot_worker.shard_refs")


class ShardRefError(ValueError):
    """A ref the worker cannot honour (the server maps ValueError to INVALID_ARGUMENT)."""


def decode_varints(raw: bytes, count: int) -> list[int]:
    """LEB128 varints, vectorised: half a Python loop's time (1.8 vs 3.7 ms per 16k-token completion with
    the inflate, on a busy 2-core machine), paid by the trainer for each completion it reads."""
    b = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(b < 0x80)
    if len(ends) != count or (len(b) and ends[-1] != len(b) - 1) or (count == 0 and len(b)):
        raise ValueError(f"expected {count} token ids, decoded {len(ends)}")
    if count == 0:
        return []
    starts = np.concatenate(([0], ends[:-1] + 1))
    if np.max(ends - starts) > 4:
        raise ValueError("a token id longer than 5 varint bytes (not a uint32)")
    shift = (np.arange(len(b)) - np.repeat(starts, ends - starts + 1)) * 7
    return np.add.reduceat((b & 0x7F).astype(np.uint64) << shift.astype(np.uint64), starts).tolist()


def decode_floats(raw: bytes, enc: str, count: int) -> list[float]:
    """float32 values either way: the writer used f64le only for values float32 cannot hold, and the inline
    path (`repeated float`) rounds those to float32 too."""
    values = np.frombuffer(raw, dtype="<f4" if enc == "f32le+zlib" else "<f8")
    if len(values) * values.itemsize != len(raw) or len(values) != count:
        raise ValueError(f"expected {count} floats in {len(raw)} bytes of {enc}")
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as the wire's float would carry it
        return values.astype(np.float32).tolist()


def record_sections(payload: bytes) -> tuple[dict[str, Any], dict[str, tuple[dict[str, Any], bytes]]]:
    """A verified payload's meta and the raw bytes of each section, by name."""
    (meta_len,) = struct.unpack_from("<I", payload, 0)
    meta = json.loads(payload[4 : 4 + meta_len])
    p, out = 4 + meta_len, {}
    for s in meta["sections"]:
        out[s["name"]] = (s, payload[p : p + s["bytes"]])
        p += s["bytes"]
    return meta, out


class ShardReader:
    """Reads token-id and float sections of records under one run directory; one reader per request (it caches).

    A prompt record is shared by its samples, so a DPO batch names each one twice or more: the cache
    decodes it once.
    """

    def __init__(self, run_dir: str | None) -> None:
        self.root = os.path.realpath(run_dir) if run_dir else None
        self._ids: dict[tuple[str, int, int, int, str, str], list] = {}
        self._checked: set[str] = set()

    def log_reads(self, what: str) -> None:
        if self._ids:
            ids = sum(len(v) for v in self._ids.values())
            log.info("%s: %d token ids or log-probs read from %d shard records", what, ids, len(self._ids))

    def ids(self, ref: Any) -> list[int]:
        return self._cached(ref, "varint")

    def floats(self, ref: Any) -> list[float]:
        """A float section (GRPO's behaviour log-probs), as float32 values: what the inline `repeated float` carries."""
        return self._cached(ref, "float")

    def _cached(self, ref: Any, kind: str) -> list:
        path = self._path(ref.file)
        key = (path, ref.offset, ref.length, ref.crc32, ref.section, kind)
        if key not in self._ids:
            self._ids[key] = self._read(path, ref, kind)
        return self._ids[key]

    def _path(self, file: str) -> str:
        if self.root is None:
            raise ShardRefError(f"shard ref {file!r}: this worker has no PROMPTCOT_RUN_DIR, so it reads no shards; "
                                "send token ids inline (workers not on the controller's filesystem)")
        path = os.path.realpath(os.path.join(self.root, file))
        if path == self.root or os.path.commonpath([self.root, path]) != self.root:
            raise ShardRefError(f"shard ref {file!r} is outside the run directory {self.root}; "
                                "the worker reads shards only under PROMPTCOT_RUN_DIR")
        return path

    def _read(self, path: str, ref: Any, kind: str) -> list:
        where = f"shard {path} at byte {ref.offset}"
        if ref.length <= FRAME_BYTES or ref.offset < HEADER_BYTES:
            raise ShardRefError(f"{where}: bad ref (length {ref.length}, offset {ref.offset})")
        try:
            with open(path, "rb") as f:
                self._check_header(path, f.read(HEADER_BYTES))
                f.seek(ref.offset)
                frame = f.read(ref.length)
        except OSError as err:
            raise ShardRefError(f"{where}: cannot read ({err.strerror}); is the run directory on this worker's "
                                "filesystem at the controller's path?") from None
        payload = frame[FRAME_BYTES:]
        if len(frame) != ref.length or struct.unpack_from("<I", frame, 0)[0] != len(payload):
            raise ShardRefError(f"{where}: the record is shorter than the ref's {ref.length} bytes (truncated file?)")
        if zlib.crc32(payload) != ref.crc32 or struct.unpack_from("<I", frame, 4)[0] != ref.crc32:
            raise ShardRefError(f"{where}: crc32 mismatch, the record is damaged or was changed after the "
                                "controller journaled it")
        return self._section(where, payload, ref.section, kind)

    def _check_header(self, path: str, head: bytes) -> None:
        if path in self._checked:
            return
        if head[:8] != MAGIC:
            raise ShardRefError(f"shard {path}: not a promptcot shard (bad magic)")
        (version,) = struct.unpack_from("<H", head, 8)
        if version not in READS_VERSIONS:
            raise ShardRefError(f"shard {path}: format version {version}, this worker reads {READS_VERSIONS}; "
                                "upgrade the worker or send token ids inline")
        self._checked.add(path)

    @staticmethod
    def _section(where: str, payload: bytes, name: str, kind: str) -> list:
        try:
            _meta, sections = record_sections(payload)
        except (ValueError, KeyError, struct.error) as err:
            raise ShardRefError(f"{where}: unreadable record meta ({err})") from None
        if name not in sections:
            raise ShardRefError(f"{where}: the record has no section {name!r} (it has {sorted(sections)})")
        meta, data = sections[name]
        want = ("varint+zlib",) if kind == "varint" else ("f32le+zlib", "f64le+zlib")
        if meta["enc"] not in want:
            raise ShardRefError(f"{where}: section {name!r} is {meta['enc']}, not {' or '.join(want)}")
        try:
            raw = zlib.decompress(data)
            if kind == "varint":
                return decode_varints(raw, meta["count"])
            return decode_floats(raw, meta["enc"], meta["count"])
        except (ValueError, zlib.error, struct.error) as err:
            raise ShardRefError(f"{where}: section {name!r} does not decode ({err})") from None


def _pick(reader: ShardReader, msg: Any, field: str, ref_field: str, floats: bool = False) -> list:
    """The inline values, or those the ref names; both set is ambiguous and refused."""
    inline = getattr(msg, field)
    if not msg.HasField(ref_field):
        return list(inline)
    if len(inline):
        raise ShardRefError(f"{field} and {ref_field} are both set; send one of them")
    ref = getattr(msg, ref_field)
    return reader.floats(ref) if floats else reader.ids(ref)


def score_items(items: Any, run_dir: str | None) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) per ScoreItem, refs resolved."""
    reader = ShardReader(run_dir)
    out = [(_pick(reader, i, "prompt_token_ids", "prompt_ref"), _pick(reader, i, "completion_token_ids", "completion_ref"))
           for i in items]
    reader.log_reads("score")
    return out


EXAMPLE_FIELDS = ("prompt", "completion", "chosen", "rejected")
FLOAT_FIELDS = ("old_logprobs", "ref_logprobs")


def example_ids(examples: Any, run_dir: str | None) -> list[dict[str, list[int]]]:
    """{prompt, completion, chosen, rejected: ids; old_logprobs, ref_logprobs: floats} per TrainExample, refs resolved."""
    reader = ShardReader(run_dir)
    out = [{**{k: _pick(reader, e, f"{k}_token_ids", f"{k}_ref") for k in EXAMPLE_FIELDS},
            **{k: _pick(reader, e, k, f"{k}_ref", floats=True) for k in FLOAT_FIELDS}} for e in examples]
    reader.log_reads("train step")
    return out
