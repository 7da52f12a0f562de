"""The hot store's item per batch: a lossless compact encoding, re-delivery a no-op."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.ingest.batch_codec import CodecError, decode_readings, encode_readings
from cloud.ingest.readings_store import SPAN_MS, batch_items, readings_of

T0 = 1_763_733_600_000


def batch(readings: list[dict], seq: int = 7, run_id: str | None = None) -> dict:
    return {
        "schema": 1,
        "thing": "exc-01",
        "site": "lyon",
        "equipment": "excavator",
        "boot": "9c1e0f7a",
        "seq": seq,
        "runId": run_id,
        "sentAt": T0 + 10**6,
        "clockSynced": True,
        "readings": readings,
    }


def steady(count: int, step_ms: int = 5000) -> list[dict]:
    out = []
    for i in range(count):
        sensor = ("engine", "ambient")[i % 2]
        out.append(
            {
                "sensorId": sensor,
                "ts": T0 + i * step_ms,
                "temperature": round(60 + (i % 17) * 0.37, 2),
                "humidity": round(30 + (i % 5) * 0.1, 1),
                "pressure": round(1008 + (i % 3) * 0.01, 2),
            }
        )
    return out


def key(r: dict) -> tuple:
    return (r["sensorId"], r["ts"])


def test_fifteen_minutes_of_readings_fit_one_write_unit() -> None:
    readings = steady(180)
    (item,) = batch_items(batch(readings))
    sized = sum(len(k) + len(str(v)) for k, v in item.items() if k != "data") + len(item["data"])
    assert sized < 1024, sized
    assert sorted(readings_of(item), key=key) == sorted(readings, key=key)
    assert item["count"] == 180 and item["sensors"] == ["ambient", "engine"]


def test_values_that_hundredths_cannot_hold_are_kept_as_written() -> None:
    readings = [
        {"sensorId": "s", "ts": T0, "temperature": 21.123456},
        {"sensorId": "s", "ts": T0 + 1, "temperature": -3.5, "pressure": 1000.0},
        {"sensorId": "s", "ts": T0 + 2, "temperature": 1e-7, "humidity": 0.0},
    ]
    assert decode_readings(encode_readings(readings)) == readings


finite = st.floats(min_value=-40, max_value=85, allow_nan=False)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["engine", "ambient", "bay-2"]),
            st.integers(min_value=0, max_value=10**7),
            finite,
            st.none() | st.floats(min_value=0, max_value=100),
            st.none() | st.floats(min_value=300, max_value=1100),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_any_readings_come_back_exactly(rows: list[tuple]) -> None:
    readings = []
    for sensor, offset, temperature, humidity, pressure in rows:
        reading = {"sensorId": sensor, "ts": T0 + offset, "temperature": temperature}
        if humidity is not None:
            reading["humidity"] = humidity
        if pressure is not None:
            reading["pressure"] = pressure
        readings.append(reading)
    decoded = decode_readings(encode_readings(readings))
    assert sorted(decoded, key=key) == sorted(readings, key=key)


def test_a_re_delivered_batch_has_the_same_items() -> None:
    readings = steady(40)
    assert batch_items(batch(readings)) == batch_items(batch(list(reversed(readings))))
    other = batch_items(batch(readings, seq=8))
    assert other[0]["sk"] != batch_items(batch(readings))[0]["sk"]


def test_a_batch_spanning_hours_is_split_so_no_item_spans_an_hour() -> None:
    readings = steady(30, step_ms=10 * 60_000)  # 5 hours, a backlog after an outage
    items = batch_items(batch(readings, run_id="run-1"))
    assert len(items) == 5
    assert all(i["last"] - i["first"] < SPAN_MS for i in items)
    assert len({i["sk"] for i in items}) == 5 and all(i["runId"] == "run-1" for i in items)
    back = [r for i in items for r in readings_of(i)]
    assert sorted(back, key=key) == sorted(readings, key=key)


def test_unreadable_blocks_are_refused_with_a_reason() -> None:
    with pytest.raises(CodecError, match="not readable"):
        decode_readings(b"not zlib")
    with pytest.raises(CodecError, match="version"):
        decode_readings(zlib.compress(b'{"v": 9, "s": {}}'))
