"""Workers read token ids from shard refs (promptcot_worker/shard_refs.py): the decoder against the committed
v1 fixture and the stdlib tool, the refusals (damaged record, missing file, path outside the run directory),
and a real tiny worker whose ScoreLogProbs and DPO TrainStep give the same bits with refs as inline."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import struct
import zlib
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from conftest import TINY, RunningWorker, start_worker
from promptcot_worker import shard_refs
from promptcot_worker.gen import promptcot_worker_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "test" / "fixtures" / "shard-v1.pcs"
_spec = importlib.util.spec_from_file_location("read_shards", ROOT / "tools" / "read_shards.py")
read_shards = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(read_shards)


# ---- a writer for test shards (the format of docs/DATA_PLANE.md; the TypeScript writer makes the fixture) ----

def varints(ids: list[int]) -> bytes:
    out = bytearray()
    for v in ids:
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def record(key: str, kind: str, sections: dict[str, list]) -> bytes:
    """Int lists are token ids (varint+zlib); float lists are log-probs (f32le+zlib, as the writer does for float32 values)."""
    def enc(v: list) -> tuple[str, bytes]:
        if v and isinstance(v[0], float):
            return "f32le+zlib", zlib.compress(struct.pack(f"<{len(v)}f", *v), 1)
        return "varint+zlib", zlib.compress(varints(v), 1)
    blobs = {name: enc(v) for name, v in sections.items()}
    meta = json.dumps({"key": key, "kind": kind, "sections": [
        {"name": n, "enc": blobs[n][0], "bytes": len(blobs[n][1]), "count": len(v)} for n, v in sections.items()]}).encode()
    payload = struct.pack("<I", len(meta)) + meta + b"".join(b for _, b in blobs.values())
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def write_shard(path: Path, records: list[bytes]) -> list[pb.ShardRef]:
    """Writes a shard; returns a ref per record (section left empty: the caller names it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data, refs, off = bytearray(b"PCSHARD\0" + struct.pack("<HHI", 1, 0, 0)), [], 16
    for r in records:
        refs.append(pb.ShardRef(file=str(path), offset=off, length=len(r), crc32=struct.unpack_from("<I", r, 4)[0]))
        data += r
        off += len(r)
    path.write_bytes(bytes(data))
    return refs


def with_section(ref: pb.ShardRef, section: str, **change) -> pb.ShardRef:
    out = pb.ShardRef()
    out.CopyFrom(ref)
    out.section = section
    for k, v in change.items():
        setattr(out, k, v)
    return out


# ---- the decoder ----

def fixture_refs() -> list[tuple[pb.ShardRef, dict]]:
    return [(pb.ShardRef(file=str(FIXTURE), offset=off, length=8 + struct.unpack_from("<I", FIXTURE.read_bytes(), off)[0],
                         crc32=struct.unpack_from("<I", FIXTURE.read_bytes(), off + 4)[0]), sections)
            for off, _meta, sections in read_shards.read_shard(FIXTURE)]


def test_reads_the_v1_fixture_as_the_stdlib_tool_does():
    reader = shard_refs.ShardReader(str(ROOT))
    seen = 0
    for ref, sections in fixture_refs():
        for name, value in sections.items():
            if name in ("token_ids", "prompt_token_ids"):
                assert reader.ids(with_section(ref, name)) == value
                seen += 1
    assert seen == 3  # one prompt record, two samples with token ids
    first_sample = fixture_refs()[1][0]
    assert reader.ids(with_section(first_sample, "token_ids")) == [0, 127, 128, 16_383, 16_384, 151_935, 4_294_967_295]


def test_varints_decode_as_the_stdlib_reader_does():
    rng = random.Random(0)
    for ids in ([], [0], [127, 128, 16_383, 16_384, 2**32 - 1], [rng.randrange(151_936) for _ in range(5000)]):
        raw = varints(ids)
        assert shard_refs.decode_varints(raw, len(ids)) == read_shards._varints(raw, len(ids)) == ids
    with pytest.raises(ValueError, match="expected 3 token ids, decoded 2"):
        shard_refs.decode_varints(varints([1, 2]), 3)
    with pytest.raises(ValueError, match="expected 1 token ids"):
        shard_refs.decode_varints(b"\x81", 1)  # a torn varint: no last byte
    with pytest.raises(ValueError, match="longer than 5"):
        shard_refs.decode_varints(b"\x81\x81\x81\x81\x81\x01", 1)


def test_a_text_section_is_not_token_ids():
    ref = fixture_refs()[1][0]
    with pytest.raises(shard_refs.ShardRefError, match="section 'text' is utf8\\+zlib, not varint\\+zlib"):
        shard_refs.ShardReader(str(ROOT)).ids(with_section(ref, "text"))
    with pytest.raises(shard_refs.ShardRefError, match="has no section 'logprobs'"):
        shard_refs.ShardReader(str(ROOT)).ids(with_section(ref, "logprobs"))


def test_refusals_name_the_file_and_offset(tmp_path: Path):
    run = tmp_path / "run"
    [ref] = write_shard(run / "shards" / "rollout" / "it001" / "a.pcs", [record("s", "sample", {"token_ids": [5, 6, 7]})])
    ok = with_section(ref, "token_ids")
    assert shard_refs.ShardReader(str(run)).ids(ok) == [5, 6, 7]
    relative = with_section(ok, "token_ids", file="shards/rollout/it001/a.pcs")
    assert shard_refs.ShardReader(str(run)).ids(relative) == [5, 6, 7]

    damaged = bytearray(Path(ref.file).read_bytes())
    damaged[-2] ^= 0x01  # a flipped bit inside the record's payload
    (run / "shards" / "rollout" / "it001" / "b.pcs").write_bytes(bytes(damaged))
    bad = with_section(ok, "token_ids", file=str(run / "shards" / "rollout" / "it001" / "b.pcs"))
    with pytest.raises(shard_refs.ShardRefError, match=r"b\.pcs at byte 16: crc32 mismatch"):
        shard_refs.ShardReader(str(run)).ids(bad)
    with pytest.raises(shard_refs.ShardRefError, match=r"missing\.pcs at byte 16: cannot read"):
        shard_refs.ShardReader(str(run)).ids(with_section(ok, "token_ids", file="shards/missing.pcs"))
    with pytest.raises(shard_refs.ShardRefError, match="truncated"):
        shard_refs.ShardReader(str(run)).ids(with_section(ok, "token_ids", length=ok.length + 10))

    outside = tmp_path / "elsewhere.pcs"
    outside.write_bytes(Path(ref.file).read_bytes())
    for file in (str(outside), "../elsewhere.pcs", "shards/../../elsewhere.pcs"):
        with pytest.raises(shard_refs.ShardRefError, match="outside the run directory"):
            shard_refs.ShardReader(str(run)).ids(with_section(ok, "token_ids", file=file))
    (run / "link.pcs").symlink_to(outside)  # a symlink out of the run directory is outside too
    with pytest.raises(shard_refs.ShardRefError, match="outside the run directory"):
        shard_refs.ShardReader(str(run)).ids(with_section(ok, "token_ids", file="link.pcs"))
    with pytest.raises(shard_refs.ShardRefError, match="no PROMPTCOT_RUN_DIR"):
        shard_refs.ShardReader(None).ids(ok)


def test_inline_and_ref_together_are_ambiguous(tmp_path: Path):
    [ref] = write_shard(tmp_path / "s.pcs", [record("s", "sample", {"token_ids": [1]})])
    item = pb.ScoreItem(id="x", prompt_token_ids=[1], completion_token_ids=[2], completion_ref=with_section(ref, "token_ids"))
    with pytest.raises(shard_refs.ShardRefError, match="completion_token_ids and completion_ref are both set"):
        shard_refs.score_items([item], str(tmp_path))
    item.ClearField("completion_token_ids")
    assert shard_refs.score_items([item], str(tmp_path)) == [([1], [1])]


# ---- a real worker ----

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def shard_worker(run_dir: Path) -> Iterator[RunningWorker]:
    saved = os.environ.get("PROMPTCOT_RUN_DIR")
    os.environ["PROMPTCOT_RUN_DIR"] = str(run_dir)  # start_worker copies the environment
    try:
        worker = start_worker(*TINY, "--seed", "11", "--worker-id", "shards")
    finally:
        if saved is None:
            del os.environ["PROMPTCOT_RUN_DIR"]
        else:
            os.environ["PROMPTCOT_RUN_DIR"] = saved
    yield worker
    worker.stop()


def samples(run_dir: Path, seed: int, prompts: int = 2, per_prompt: int = 2):
    """(prompt ids, completion ids, prompt ref, completion ref) written as the controller writes them:
    one prompt record shared by its samples."""
    rng = random.Random(seed)
    out, records, plan = [], [], []
    for p in range(prompts):
        prompt = [rng.randrange(3, 2000) for _ in range(5 + p)]
        records.append(record(f"p{p}", "prompt", {"prompt_token_ids": prompt}))
        pi = len(records) - 1
        for s in range(per_prompt):
            completion = [rng.randrange(3, 2000) for _ in range(4 + s + p)]
            records.append(record(f"p{p}/{s}", "sample", {"token_ids": completion}))
            plan.append((prompt, completion, pi, len(records) - 1))
    refs = write_shard(run_dir / "shards" / "rollout" / "it001" / f"seed{seed}.pcs", records)
    for prompt, completion, pi, ci in plan:
        out.append((prompt, completion, with_section(refs[pi], "prompt_token_ids"), with_section(refs[ci], "token_ids")))
    return out


def score(worker: RunningWorker, items: list[pb.ScoreItem]) -> list[pb.ScoreResult]:
    return list(worker.stub.ScoreLogProbs(pb.ScoreRequest(items=items, return_token_logprobs=True), timeout=120).results)


def test_info_says_the_worker_reads_refs(shard_worker: RunningWorker, tiny_worker: RunningWorker):
    assert shard_worker.stub.Info(pb.InfoRequest()).reads_shard_refs
    if not os.environ.get("PROMPTCOT_RUN_DIR"):  # conftest's worker has none unless the caller set one
        assert not tiny_worker.stub.Info(pb.InfoRequest()).reads_shard_refs


def test_score_with_refs_equals_inline_bit_for_bit(shard_worker: RunningWorker, run_dir: Path):
    data = samples(run_dir, seed=1)
    inline = score(shard_worker, [pb.ScoreItem(id=str(i), prompt_token_ids=p, completion_token_ids=c) for i, (p, c, _, _) in enumerate(data)])
    refs = score(shard_worker, [pb.ScoreItem(id=str(i), prompt_ref=pr, completion_ref=cr) for i, (_, _, pr, cr) in enumerate(data)])
    assert [r.id for r in refs] == [r.id for r in inline]
    assert [r.sum_logprob for r in refs] == [r.sum_logprob for r in inline]
    assert [list(r.token_logprobs) for r in refs] == [list(r.token_logprobs) for r in inline]
    assert [r.num_tokens for r in refs] == [len(c) for _, c, _, _ in data]


def dpo_step(worker: RunningWorker, step_id: str, examples: list[pb.TrainExample]) -> dict[str, float]:
    req = pb.TrainStepRequest(step_id=step_id, loss=pb.DPO, examples=examples,
                              hyper=pb.TrainHyper(learning_rate=1e-2, beta=0.1, micro_batch_size=2))
    metrics = dict(worker.stub.TrainStep(req, timeout=180).metrics)
    del metrics["seconds"]  # wall time, the one metric that may differ
    return metrics


def test_dpo_step_with_refs_equals_inline(shard_worker: RunningWorker, run_dir: Path, tmp_path: Path):
    data = samples(run_dir, seed=2, prompts=2, per_prompt=2)
    pairs = [(data[0], data[1]), (data[2], data[3])]  # chosen and rejected share their prompt record
    ref_logp = score(shard_worker, [pb.ScoreItem(id=str(i), prompt_token_ids=d[0], completion_token_ids=d[1]) for i, d in enumerate(data)])
    logp = {i: r.sum_logprob for i, r in enumerate(ref_logp)}
    inline = [pb.TrainExample(prompt_token_ids=c[0], chosen_token_ids=c[1], rejected_token_ids=r[1],
                              ref_chosen_logp=logp[2 * k], ref_rejected_logp=logp[2 * k + 1]) for k, (c, r) in enumerate(pairs)]
    by_ref = [pb.TrainExample(prompt_ref=c[2], chosen_ref=c[3], rejected_ref=r[3],
                              ref_chosen_logp=logp[2 * k], ref_rejected_logp=logp[2 * k + 1]) for k, (c, r) in enumerate(pairs)]
    dpo_step(shard_worker, "warm", inline)  # so the checkpoint below has optimizer state to restore
    start = tmp_path / "start"
    shard_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(start), include_optimizer=True))
    m_inline = dpo_step(shard_worker, "inline", inline)
    shard_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(tmp_path / "inline"), include_optimizer=True))
    shard_worker.stub.LoadCheckpoint(pb.LoadCheckpointRequest(path=str(start), load_optimizer=True))
    m_refs = dpo_step(shard_worker, "refs", by_ref)
    shard_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(tmp_path / "refs"), include_optimizer=True))
    assert m_refs == m_inline and m_inline["loss"] > 0
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("start", "inline", "refs")]
    assert weights[1] == weights[2] and weights[0] != weights[1]


def test_grpo_step_with_refs_equals_inline(shard_worker: RunningWorker, run_dir: Path, tmp_path: Path):
    """Prompt, completion and the behaviour log-probs (a float section, as the `old` rows keep them) by ref."""
    data = samples(run_dir, seed=5, prompts=2, per_prompt=2)
    scored = score(shard_worker, [pb.ScoreItem(id=str(i), prompt_token_ids=d[0], completion_token_ids=d[1]) for i, d in enumerate(data)])
    old = [list(r.token_logprobs) for r in scored]
    old_refs = [with_section(r, "logprobs") for r in write_shard(run_dir / "shards" / "old" / "it001" / "a.pcs",
                                                                  [record(f"o{i}", "sample", {"logprobs": lp}) for i, lp in enumerate(old)])]
    adv = [1.0, -1.0, 0.5, -0.5]
    inline = [pb.TrainExample(prompt_token_ids=d[0], completion_token_ids=d[1], advantage=adv[i], old_logprobs=old[i], ref_logprobs=old[i])
              for i, d in enumerate(data)]
    by_ref = [pb.TrainExample(prompt_ref=d[2], completion_ref=d[3], advantage=adv[i], old_logprobs_ref=old_refs[i], ref_logprobs_ref=old_refs[i])
              for i, d in enumerate(data)]

    def step(step_id: str, examples: list[pb.TrainExample]) -> dict[str, float]:
        req = pb.TrainStepRequest(step_id=step_id, loss=pb.GRPO, examples=examples,
                                  hyper=pb.TrainHyper(learning_rate=1e-2, kl_coef=0.1, micro_batch_size=2))
        metrics = dict(shard_worker.stub.TrainStep(req, timeout=180).metrics)
        del metrics["seconds"]
        return metrics

    step("grpo-warm", inline)
    start = tmp_path / "start"
    shard_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(start), include_optimizer=True))
    m_inline = step("grpo-inline", inline)
    shard_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(tmp_path / "inline")))
    shard_worker.stub.LoadCheckpoint(pb.LoadCheckpointRequest(path=str(start), load_optimizer=True))
    m_refs = step("grpo-refs", by_ref)
    shard_worker.stub.SaveCheckpoint(pb.SaveCheckpointRequest(path=str(tmp_path / "refs")))
    assert m_refs == m_inline
    assert (tmp_path / "inline" / "model.safetensors").read_bytes() == (tmp_path / "refs" / "model.safetensors").read_bytes()
    token_ids_as_floats = pb.TrainExample(prompt_ref=data[0][2], completion_ref=data[0][3], old_logprobs_ref=data[0][3])
    with pytest.raises(grpc.RpcError, match="section 'token_ids' is varint\\+zlib, not f32le\\+zlib or f64le\\+zlib"):
        step("grpo-bad", [token_ids_as_floats])


def test_float64_sections_round_to_float32_as_the_wire_does():
    values = [-0.1, -1e-300, -2.5, -1e300]
    got = shard_refs.decode_floats(struct.pack("<4d", *values), "f64le+zlib", 4)
    assert got[:3] == list(struct.unpack("<3f", struct.pack("<3f", *values[:3]))) and got[2] == -2.5 and got[0] != -0.1
    assert got[3] == float("-inf")
    assert shard_refs.decode_floats(struct.pack("<2f", -0.5, -3.0), "f32le+zlib", 2) == [-0.5, -3.0]
    with pytest.raises(ValueError, match="expected 3 floats"):
        shard_refs.decode_floats(struct.pack("<2f", -0.5, -3.0), "f32le+zlib", 3)


def test_a_damaged_shard_is_invalid_argument_naming_the_file(shard_worker: RunningWorker, run_dir: Path):
    [(_, _, pr, cr)] = samples(run_dir, seed=3, prompts=1, per_prompt=1)
    path = Path(cr.file)
    data = bytearray(path.read_bytes())
    data[cr.offset + cr.length - 1] ^= 0x40  # one flipped bit in the sample record's last byte
    path.write_bytes(bytes(data))
    with pytest.raises(grpc.RpcError) as err:
        score(shard_worker, [pb.ScoreItem(id="x", prompt_ref=pr, completion_ref=cr)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{path} at byte {cr.offset}: crc32 mismatch" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        dpo_step(shard_worker, "damaged", [pb.TrainExample(prompt_ref=pr, chosen_ref=cr, rejected_ref=cr)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and str(path) in err.value.details()


def test_a_path_outside_the_run_dir_is_refused(shard_worker: RunningWorker, run_dir: Path, tmp_path: Path):
    [(_, _, pr, cr)] = samples(run_dir, seed=4, prompts=1, per_prompt=1)
    outside = tmp_path / "outside.pcs"
    outside.write_bytes(Path(cr.file).read_bytes())  # a valid shard, in the wrong place
    for file in (str(outside), os.path.relpath(outside, run_dir)):
        moved = with_section(cr, "token_ids", file=file)
        with pytest.raises(grpc.RpcError) as err:
            score(shard_worker, [pb.ScoreItem(id="x", prompt_ref=pr, completion_ref=moved)])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "outside the run directory" in err.value.details() and file in err.value.details()
