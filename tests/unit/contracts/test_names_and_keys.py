"""Names, topics and the S3 key layout of the design."""

from __future__ import annotations

import pytest

from chantier.names import (
    InvalidNameError,
    TopicError,
    check_name,
    parse_topic,
    strip_basic_ingest,
    topic,
)
from chantier.s3keys import raw_key


@pytest.mark.parametrize("bad", ["", "Exc-01", "exc_01", "-exc", "exc-", "a" * 65, "exc/01", 3])
def test_invalid_names_are_refused_with_the_rule(bad: object) -> None:
    with pytest.raises(InvalidNameError, match="lowercase letters, digits"):
        check_name("thing", bad)


def test_topic_with_and_without_basic_ingest_prefix() -> None:
    assert topic("lyon", "exc-01", "telemetry") == "dt/chantier/lyon/exc-01/telemetry"
    prefixed = topic("lyon", "exc-01", "health", "$aws/rules/chantier_{kind}")
    assert prefixed == "$aws/rules/chantier_health/dt/chantier/lyon/exc-01/health"
    assert strip_basic_ingest(prefixed) == ("chantier_health", "dt/chantier/lyon/exc-01/health")
    assert strip_basic_ingest("dt/chantier/a/b/health") == (None, "dt/chantier/a/b/health")


def test_parse_topic_round_trip_and_refusals() -> None:
    parsed = parse_topic("dt/chantier/lyon/exc-01/telemetry")
    assert (parsed.site, parsed.thing, parsed.kind) == ("lyon", "exc-01", "telemetry")
    for bad in (
        "dt/chantier/lyon/exc-01",
        "dt/other/lyon/exc-01/telemetry",
        "dt/chantier/lyon/exc-01/video",
        "dt/chantier/Lyon/exc-01/telemetry",
    ):
        with pytest.raises(TopicError):
            parse_topic(bad)


def test_raw_key_layout_uses_utc_date_of_sent_at() -> None:
    # 2025-11-21 23:59:59.999 UTC is still the 21st whatever the local time zone says.
    key = raw_key("lyon", "exc-01", 1763769599999, "9c1e0f7a", 1842)
    assert key == "raw/site=lyon/thing=exc-01/date=2025-11-21/9c1e0f7a-1842.json"
