"""`chantier simulate`'s options: quick batches by default, a reporting profile's own cadence."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from commands import simulate
from device.config import REPORTING_PROFILES, AgentConfig


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers())
    return parser.parse_args(["simulate", *argv])


def test_without_options_a_run_batches_every_5_s_and_reads_every_second() -> None:
    opts = simulate.options_from(parse(), Path("state"))
    assert (opts.batch_age_s, opts.interval_s, opts.reporting) == (5.0, 1.0, "default")


@pytest.mark.parametrize("profile", sorted(REPORTING_PROFILES))
def test_a_reporting_profile_runs_the_agents_at_its_own_cadence(profile: str) -> None:
    opts = simulate.options_from(parse("--reporting", profile), Path("state"))
    # None: the agent's batch age for that profile (commands/simulator/fleet.py)
    assert (opts.batch_age_s, opts.reporting) == (None, profile)
    assert opts.interval_s == AgentConfig.sample_interval_s


def test_explicit_batch_age_and_interval_win_over_the_profile() -> None:
    args = parse("--reporting", "live", "--batch-age", "30", "--interval", "2")
    opts = simulate.options_from(args, Path("state"))
    assert (opts.batch_age_s, opts.interval_s, opts.reporting) == (30.0, 2.0, "live")


def test_an_unknown_profile_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--reporting", "hourly")
    assert "invalid choice: 'hourly'" in capsys.readouterr().err


def test_queues_stay_under_the_state_folder_unless_a_folder_is_given(tmp_path: Path) -> None:
    assert simulate.options_from(parse(), Path("state")).queues is None
    opts = simulate.options_from(parse("--queue-dir", str(tmp_path / "q")), Path("state"))
    assert opts.queues == tmp_path / "q"
