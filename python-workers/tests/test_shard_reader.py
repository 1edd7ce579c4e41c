"""The documented stdlib reader (tools/read_shards.py) reads a v1 shard written by the TypeScript writer
(test/fixtures/shard-v1.pcs) and stops at a torn tail."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("read_shards", ROOT / "tools" / "read_shards.py")
reader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reader)
FIXTURE = ROOT / "test" / "fixtures" / "shard-v1.pcs"


def test_reads_the_v1_fixture():
    recs = list(reader.read_shard(FIXTURE))
    assert [m["kind"] for _, m, _ in recs] == ["prompt", "sample", "sample", "sample"]
    assert recs[3][2]["logprobs"][:2] == [-0.5, -1.25] and abs(recs[3][2]["logprobs"][2] + 0.1) < 1e-7
    assert recs[0][2] == {"prompt_token_ids": [1, 2, 3]}
    assert recs[1][2]["text"] == "first completion \\boxed{4}"
    assert recs[1][2]["token_ids"] == [0, 127, 128, 16_383, 16_384, 151_935, 4_294_967_295]
    assert recs[2][1]["key"] == "it001/rollout/t0/001"
    assert recs[2][2] == {"text": "second ünï", "token_ids": []}


def test_a_torn_tail_ends_the_file(tmp_path):
    data = FIXTURE.read_bytes()
    last = list(reader.read_shard(FIXTURE))[-1][0]
    for cut in (last + 3, last + 9, len(data) - 1):
        torn = tmp_path / f"torn-{cut}.pcs"
        torn.write_bytes(data[:cut])
        assert [m["key"] for _, m, _ in reader.read_shard(torn)] == ["rollout|1|t0|abc", "it001/rollout/t0/000", "it001/rollout/t0/001"]
