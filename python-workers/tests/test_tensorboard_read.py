"""TensorBoard event files written by the controller (src/telemetry/tensorboard.ts, through MetricsSink)
read back by TensorBoard's own reader. Skips when the `tensorboard` package is not installed."""
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

tensorboard = pytest.importorskip(
    "tensorboard",
    reason="the `tensorboard` package is not installed in this venv (pip install tensorboard==2.21.0); "
    "it is only needed to check that our hand-written event files read back",
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TSX = REPO / "node_modules" / ".bin" / "tsx"


def write_events(tmp_path: Path) -> list:
    if not TSX.exists() or shutil.which("node") is None:
        pytest.skip(f"node and {TSX} are needed to write the events (run scripts/bootstrap.sh)")
    out = subprocess.run([str(TSX), "test/helpers/write-tb-events.ts", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_event_accumulator_reads_every_scalar(tmp_path):
    records = write_events(tmp_path)
    files = list((tmp_path / "events").glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(str(tmp_path / "events"), size_guidance={"scalars": 0})
    acc.Reload()
    expected = {}
    for r in records:
        step = r.get("global_step", r.get("step", r.get("iteration", 0)))
        for k, v in r.items():
            if k in ("kind", "iteration", "step", "global_step") or not isinstance(v, (int, float)):
                continue
            expected.setdefault(f"{r['kind']}/{k}", []).append((step, v))
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)
    for tag, points in expected.items():
        got = acc.Scalars(tag)
        assert [e.step for e in got] == [s for s, _ in points], tag
        for e, (_, v) in zip(got, points):
            assert e.value == pytest.approx(struct.unpack("f", struct.pack("f", v))[0], rel=0, abs=0), tag
            assert e.wall_time > 1.6e9


def test_corrupted_record_is_detected(tmp_path):
    """The CRCs are real: TensorBoard's reader stops at a flipped data byte instead of reading garbage."""
    write_events(tmp_path)
    path = next((tmp_path / "events").glob("events.out.tfevents.*"))
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # inside the last record's payload
    path.write_bytes(bytes(data))
    acc = EventAccumulator(str(tmp_path / "events"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [7]
