"""Reads promptcot shard files (docs/DATA_PLANE.md) with Python's standard library only.

    python tools/read_shards.py RUN_DIR/shards/rollout/it001/*.pcs     # one JSON line per record

Records whose frame is short or whose crc32 does not match end the file (a torn tail from a crash).
A unit redone after a crash can appear twice (identical, in a later file): the journal row is the
authority, so keep the last record per key.
"""
import json
import struct
import sys
import zlib

MAGIC = b"PCSHARD\0"
READS_VERSIONS = (1,)


def _varints(raw, count):
    out, v, shift = [], 0, 0
    for b in raw:
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            out.append(v)
            v, shift = 0, 0
    assert len(out) == count, f"expected {count} token ids, got {len(out)}"
    return out


def _section(meta, data):
    kind, codec = meta["enc"].split("+")
    if codec != "zlib":
        raise ValueError(f"section encoding {meta['enc']} needs the brotli package (pip install brotli)")
    raw = zlib.decompress(data)
    if kind == "utf8":
        return raw.decode("utf-8")
    if kind in ("f32le", "f64le"):
        return list(struct.unpack(f"<{meta['count']}{'f' if kind == 'f32le' else 'd'}", raw))
    return _varints(raw, meta["count"])


def read_shard(path):
    """Yields (offset, meta, {section name: text or token ids}) for each complete record of one shard."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != MAGIC:
        raise ValueError(f"{path}: not a promptcot shard")
    (version,) = struct.unpack_from("<H", buf, 8)
    if version not in READS_VERSIONS:
        raise ValueError(f"{path}: shard format version {version}, this reader knows {READS_VERSIONS}")
    off = 16
    while off + 8 <= len(buf):
        length, crc = struct.unpack_from("<II", buf, off)
        payload = buf[off + 8 : off + 8 + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return  # torn tail
        (meta_len,) = struct.unpack_from("<I", payload, 0)
        meta = json.loads(payload[4 : 4 + meta_len])
        p, sections = 4 + meta_len, {}
        for s in meta["sections"]:
            sections[s["name"]] = _section(s, payload[p : p + s["bytes"]])
            p += s["bytes"]
        yield off, meta, sections
        off += 8 + length


if __name__ == "__main__":
    for path in sys.argv[1:]:
        for off, meta, sections in read_shard(path):
            print(json.dumps({"file": path, "offset": off, "key": meta["key"], "kind": meta["kind"], **sections}))
