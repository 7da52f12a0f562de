"""What `chantier demo` shows, fault by fault: which machine, when, and what to expect.

Each scene injects one fault of the design on one machine and names the alert it must raise
and clear, with the thresholds read from the rules file the demo runs with, so the words on
screen are the numbers the cloud applies. The demo shortens durations (see `demo_rules`) so
every fault opens and clears its alert within two minutes; the real values are in the
packaged rules file and the explanation says both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chantier.alerts.rules import DEFAULT_RULES_FILE, Rule, RuleSet, load_rules
from device.sensors.simulated import DAY_S

DEMO_FOR_S = 8.0  # a rule's `for` in the demo: long enough to show "pending", short to watch
DEMO_OFFLINE_S = 30.0  # silence before a machine counts as offline (10 min in the real rules)
# The offline check runs every minute in AWS; the demo's stack runs its schedules this much
# faster, so a silent machine is flagged within seconds of the limit.
DEMO_SCHEDULE_SCALE = 0.1
FIELD_WORDS = {"temperature": "°C", "dewPointMargin": "°C of dew-point margin"}


@dataclass(frozen=True)
class Scene:
    """One fault on one machine, and the alert that tells it."""

    name: str
    equipment: str  # the first machine of this equipment gets it
    # which sensor misbehaves, named as the machine's bundle names it ("" for the whole machine)
    sensor: str
    rule: str
    start_s: float
    duration_s: float
    fault: str  # a simulated sensor fault kind, or "network-cut"
    value: float | None = None
    thing: str = ""  # filled in once the fleet is known

    @property
    def alert(self) -> str:
        return f"{self.thing}/{self.sensor or '*'}/{self.rule}"


# Times are seconds after the machines start, for a demo of SCENES_SPAN_S; a longer demo
# stretches them, a shorter one leaves out the scenes that would not finish (each needs time
# for its alert to open after the rule's `for` and to clear once the fault is over).
SCENES: tuple[Scene, ...] = (
    Scene("overheat", "excavator", "engine", "engine-overheat", 5, 30, "overheat", 84.0),
    Scene("freeze", "concrete-mixer", "drum", "freeze-risk", 10, 35, "freeze", -3.0),
    Scene("condensation", "site-cabin", "ambient", "condensation", 15, 35, "condensation", 0.4),
    Scene("sensor failure", "generator", "enclosure", "sensor-fault-reported", 20, 30, "dropout"),
    Scene("network cut", "crane", "", "offline", 25, 45, "network-cut"),
)
SCENES_SPAN_S = 100.0
CLEAR_MARGIN_S = 25.0  # after a fault ends: values recover, the alert clears, a batch lands
DEFAULT_DURATION_S = 110.0
# The simulated weather follows the time of day: after dark a site cabin is no longer heated
# and an enclosure sits at its dew point, so a demo run at night opened condensation alerts of
# its own and the condensation scene never cleared. The demo's machines all live this hour of
# a working day (UTC, the simulator's clock), whenever the demo runs; readings keep real times.
DEMO_WEATHER_HOUR_UTC = 11.0


def weather_clock(
    hour_utc: float = DEMO_WEATHER_HOUR_UTC, now: Callable[[], float] = time.time
) -> Callable[[], float]:
    """Epoch seconds for the simulated weather: today at `hour_utc` when called, then real
    time onwards."""
    started = now()
    offset = (started // DAY_S) * DAY_S + hour_utc * 3600.0 - started
    return lambda: now() + offset


@dataclass
class SceneOutcome:
    """When the scene's alert opened and cleared, in seconds since the machines started."""

    opened_s: float | None = None
    cleared_s: float | None = None
    states: list[str] = field(default_factory=list)


def demo_rules(target: Path) -> Path:
    """The packaged rules with demo timings: every `for` at most DEMO_FOR_S, offline sooner."""
    document = json.loads(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    groups = [document.get("defaults", []), *document.get("profiles", {}).values()]
    for rules in groups:
        for rule in rules:
            if isinstance(rule.get("for"), int | float):
                rule["for"] = min(rule["for"], DEMO_FOR_S)
            if rule.get("kind") == "offline":
                rule["minutes"] = DEMO_OFFLINE_S / 60
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return target


def plan(things: Sequence[tuple[str, str]], duration_s: float) -> tuple[list[Scene], list[str]]:
    """Scenes for this fleet (thing, equipment), scaled to the duration; and those left out."""
    scale = max(1.0, duration_s / SCENES_SPAN_S)
    chosen, skipped = [], []
    for scene in SCENES:
        thing = next((t for t, e in things if e == scene.equipment), None)
        if thing is None:
            skipped.append(
                f"{scene.name}: needs a {scene.equipment}; run with --devices 6 to see it"
            )
            continue
        needed = scene.start_s + scene.duration_s + CLEAR_MARGIN_S
        if needed > duration_s:
            skipped.append(f"{scene.name}: needs --duration {needed:.0f} or more")
            continue
        chosen.append(
            Scene(
                **{
                    **scene.__dict__,
                    "thing": thing,
                    "start_s": round(scene.start_s * scale, 1),
                    "duration_s": round(scene.duration_s * scale, 1),
                }
            )
        )
    return chosen, skipped


def explain(scene: Scene, rules: RuleSet, real: RuleSet) -> str:
    """What happens now and what to expect, in the numbers of the rules file."""
    rule = rules.find(scene.equipment, scene.rule)
    real_rule = real.find(scene.equipment, scene.rule)
    where = f"{scene.thing}'s {scene.sensor} sensor" if scene.sensor else scene.thing
    if scene.fault == "network-cut":
        return (
            f"network cut on {scene.thing} for {scene.duration_s:.0f} s: its link to the broker "
            f"is pulled; the agent keeps sampling into its queue on disk. After "
            f"{_offline_words(rule)} of silence the scheduled offline check raises "
            f"`offline` ({_real_note(real_rule, 'minutes')}); when the link is back the queued "
            "readings are replayed and the alert clears."
        )
    if scene.fault == "dropout":
        return (
            f"sensor failure on {where}: it stops answering. The agent retries with backoff, "
            "marks it failing and sends a health message at once; `sensor-fault-reported` "
            f"opens on the cloud side and clears when the sensor answers again "
            f"({scene.duration_s:.0f} s later)."
        )
    target = {
        "overheat": f"heads for {scene.value:g} °C",
        "freeze": f"drops towards {scene.value:g} °C",
        "condensation": f"gets damp: the dew point closes to {scene.value:g} °C of the air",
    }[scene.fault]
    return f"{scene.name} on {where}: it {target}. {_threshold_words(rule, real_rule)}"


def _threshold_words(rule: Rule | None, real: Rule | None) -> str:
    if rule is None or not rule.levels:
        return ""
    unit = FIELD_WORDS.get(rule.field, rule.field)
    sign = "≥" if rule.direction == "above" else "≤"
    levels = ", ".join(f"{level.severity} at {sign} {level.at:g}" for level in rule.levels)
    clears = f", clears past {rule.clear:g}" if rule.clear is not None else ""
    held = f"once held {rule.for_s:g} s" if rule.for_s else "at once"
    return (
        f"Rule {rule.id} ({unit}): {levels}, {held}{clears}"
        f"{_real_note(real, 'for')}; the edge agent sends the crossing reading at once."
    )


def _offline_words(rule: Rule | None) -> str:
    seconds = (rule.minutes if rule else DEMO_OFFLINE_S / 60) * 60
    return f"{seconds:.0f} s"


def _real_note(real: Rule | None, what: str) -> str:
    if real is None:
        return ""
    if what == "minutes":
        return f"{real.minutes:g} min in the real rules"
    if real.for_s and real.for_s > DEMO_FOR_S:
        return f" ({real.for_s:g} s in the real rules)"
    return ""


def load_both(demo_file: Path) -> tuple[RuleSet, RuleSet]:
    return load_rules(demo_file), load_rules()


def meaning(state: str) -> str:
    """What an alert state means, for the line that reports a transition."""
    return {
        "ACTIVE": "opened",
        "NORMAL": "cleared",
        "LATCHED": "cleared, kept until acknowledged",
        "ACKNOWLEDGED": "acknowledged",
        "SNOOZED": "snoozed",
    }.get(state, state.lower())


def scene_for(scenes: Sequence[Scene], alert: str) -> Scene | None:
    return next((s for s in scenes if s.alert == alert), None)


def describe_outcome(scene: Scene, outcome: SceneOutcome | None) -> str:
    if outcome is None or outcome.opened_s is None:
        return f"{scene.name:<14} {scene.alert}: no alert opened"
    cleared = (
        f", cleared at {outcome.cleared_s:.0f} s" if outcome.cleared_s is not None else ", open"
    )
    return f"{scene.name:<14} {scene.alert}: opened at {outcome.opened_s:.0f} s{cleared}"
