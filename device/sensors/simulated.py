"""Simulated BME280s on construction machines, deterministic from a seed and a clock."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from device.config import FaultConfig
from device.sensors.base import Measurement, SensorError, clamp

DAY_S = 86_400.0
# How long an overheat or freeze takes to reach its level: short, so a demo sees it at once.
FAULT_RAMP_S = 8.0
# Integration step: the engine model is exact for a constant target, so only load changes matter.
MAX_STEP_S = 30.0


@dataclass(frozen=True)
class Profile:
    """Duty cycle and engine behaviour of one kind of machine."""

    work_s: float
    idle_s: float
    load: float
    rise_c: float  # engine bay above ambient at full load
    has_engine: bool = True


PROFILES: dict[str, Profile] = {
    "excavator": Profile(work_s=1500, idle_s=600, load=0.9, rise_c=58),
    "crane": Profile(work_s=1200, idle_s=900, load=0.6, rise_c=45),
    "generator": Profile(work_s=DAY_S, idle_s=0, load=0.8, rise_c=50),
    "compressor": Profile(work_s=600, idle_s=300, load=0.85, rise_c=52),
    "concrete-mixer": Profile(work_s=900, idle_s=600, load=0.7, rise_c=46),
    "site-cabin": Profile(work_s=0, idle_s=DAY_S, load=0.0, rise_c=0, has_engine=False),
}
WARM_TAU_S = 480.0
COOL_TAU_S = 900.0


def dew_point_rh(temperature: float, dew_point: float) -> float:
    """Relative humidity (%) of air at `temperature` with the given dew point (Magnus)."""
    a, b = 17.625, 243.04
    return 100.0 * math.exp(a * dew_point / (b + dew_point) - a * temperature / (b + temperature))


class SimulatedSensor:
    """One simulated sensor; `elapsed` gives seconds since start, `wall` epoch seconds."""

    def __init__(
        self,
        name: str,
        profile: str,
        *,
        seed: int = 0,
        placement: str | None = None,
        faults: Sequence[FaultConfig] = (),
        elapsed: Callable[[], float] | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
        self.name = name
        self.profile_name = profile
        self.profile = PROFILES[profile]
        self.placement = placement or _placement_from_name(name, self.profile)
        self.faults = tuple(faults)
        self.seed = seed
        start = time.monotonic()
        self._elapsed = elapsed or (lambda: time.monotonic() - start)
        self._wall = wall or time.time
        site = random.Random(f"site:{seed}")
        self._ambient_mean = 12.0 + site.uniform(-4.0, 4.0)
        self._ambient_amplitude = 5.0 + site.uniform(0.0, 3.0)
        self._dew_offset = 3.0 + site.uniform(0.0, 4.0)
        self._elevation_m = site.uniform(0.0, 500.0)
        self._phases = [site.uniform(0.0, 2 * math.pi) for _ in range(3)]
        self._storm_period_s = DAY_S * site.uniform(3.0, 6.0)
        self._noise = random.Random(f"noise:{seed}:{name}")
        # Seeding a generator from a string hashes it with SHA-512: the draws of one duty cycle
        # and one storm are kept, not redone on every read (a fleet of agents shares a core).
        self._load_jitter: tuple[int, float] | None = None
        self._storm: tuple[int, float, float] | None = None
        self._last_t: float | None = None
        self._engine_c: float | None = None
        self._stuck: Measurement | None = None

    # -- the physical model ---------------------------------------------------------------
    def ambient(self, wall_s: float) -> float:
        """Outside air: a daily cycle peaking mid-afternoon UTC, plus a slow weather drift."""
        hour = (wall_s % DAY_S) / 3600.0
        daily = self._ambient_amplitude * math.cos(2 * math.pi * (hour - 15.0) / 24.0)
        drift = 2.5 * math.sin(2 * math.pi * wall_s / (DAY_S * 4.3) + self._phases[0])
        return self._ambient_mean + daily + drift

    def working(self, elapsed_s: float) -> float:
        """Engine load (0..1) at this moment of the duty cycle."""
        p = self.profile
        if not p.has_engine or p.work_s <= 0:
            return 0.0
        period = p.work_s + p.idle_s
        cycle = int(elapsed_s // period)
        if elapsed_s - cycle * period >= p.work_s:
            return 0.0
        if self._load_jitter is None or self._load_jitter[0] != cycle:
            self._load_jitter = (
                cycle,
                random.Random(f"load:{self.seed}:{cycle}").uniform(0.85, 1.1),
            )
        return min(1.0, p.load * self._load_jitter[1])

    def pressure(self, wall_s: float) -> float:
        """Station pressure: altitude, slow drift, and a storm front now and then."""
        base = 1013.25 * (1.0 - self._elevation_m / 44_330.0) ** 5.255
        drift = 4.0 * math.sin(2 * math.pi * wall_s / (DAY_S * 2.7) + self._phases[1])
        drift += 1.5 * math.sin(2 * math.pi * wall_s / (DAY_S * 0.9) + self._phases[2])
        onset, depth = self._storm_at(int(wall_s // self._storm_period_s))
        into = wall_s - onset
        # falls over 3 h, recovers over 9 h: the crane storm rule watches the 3 h drop
        if 0 <= into < 3 * 3600:
            drift -= depth * into / (3 * 3600)
        elif 3 * 3600 <= into < 12 * 3600:
            drift -= depth * (1.0 - (into - 3 * 3600) / (9 * 3600))
        return base + drift

    def _storm_at(self, k: int) -> tuple[float, float]:
        """Onset time and depth (hPa) of the k-th storm period's front."""
        if self._storm is None or self._storm[0] != k:
            storm = random.Random(f"storm:{self.seed}:{k}")
            onset = k * self._storm_period_s + storm.uniform(0.0, self._storm_period_s * 0.7)
            self._storm = (k, onset, storm.uniform(10.0, 25.0))
        return self._storm[1], self._storm[2]

    def _advance_engine(self, t: float, ambient: float) -> float:
        if self._engine_c is None or self._last_t is None:
            self._engine_c = ambient
            return ambient
        now = self._last_t
        while now < t:
            step = min(MAX_STEP_S, t - now)
            load = self.working(now)
            target = ambient + self.profile.rise_c * load + (0.0 if load else 6.0)
            tau = WARM_TAU_S if target > self._engine_c else COOL_TAU_S
            self._engine_c = target + (self._engine_c - target) * math.exp(-step / tau)
            now += step
        return self._engine_c

    def _model(self, t: float, wall_s: float) -> Measurement:
        ambient = self.ambient(wall_s)
        engine = self._advance_engine(t, ambient) if self.profile.has_engine else ambient
        if self.placement == "engine":
            temperature = engine
        elif self.placement == "cabin":
            hour = (wall_s % DAY_S) / 3600.0
            heated = not self.profile.has_engine and 7.0 <= hour < 18.0
            temperature = 20.0 if heated and ambient < 20.0 else ambient + 3.0
            temperature += 0.1 * (engine - ambient)
        else:
            temperature = ambient
        dew = self._ambient_mean - self._dew_offset + 1.5 * math.sin(wall_s / DAY_S)
        humidity = dew_point_rh(temperature, min(dew, temperature))
        return Measurement(temperature, humidity, self.pressure(wall_s))

    # -- faults -------------------------------------------------------------------------------
    def _active(self, t: float) -> list[tuple[int, FaultConfig]]:
        active = []
        for i, fault in enumerate(self.faults):
            end = math.inf if fault.duration_s is None else fault.start_s + fault.duration_s
            if fault.start_s <= t < end:
                active.append((i, fault))
        return active

    def _apply_faults(self, t: float, m: Measurement) -> Measurement:
        temperature, humidity, pressure = m.temperature, m.humidity, m.pressure
        stuck_now = False
        for _, fault in self._active(t):
            ramp = min(1.0, (t - fault.start_s) / FAULT_RAMP_S)
            if fault.kind == "dropout":
                raise SensorError(f"simulated dropout on {self.name}: no answer from the sensor")
            if fault.kind == "overheat":
                peak = 84.0 if fault.value is None else fault.value
                temperature = temperature + (peak - temperature) * ramp
            elif fault.kind == "freeze":
                floor = -8.0 if fault.value is None else fault.value
                temperature = temperature + (floor - temperature) * ramp
            elif fault.kind == "condensation" and humidity is not None:
                # Moist air meets a cold surface: the dew point closes in on the temperature.
                margin = 0.5 if fault.value is None else fault.value
                target = dew_point_rh(temperature, temperature - margin)
                humidity = humidity + (target - humidity) * ramp
            elif fault.kind == "spikes":
                if self._noise.random() < fault.probability:
                    amplitude = 30.0 if fault.value is None else fault.value
                    temperature += amplitude * self._noise.choice((-1.0, 1.0))
            elif fault.kind == "storm" and pressure is not None:
                span = fault.duration_s or 3 * 3600.0
                drop = 20.0 if fault.value is None else fault.value
                pressure -= drop * min(1.0, (t - fault.start_s) / span)
            elif fault.kind == "stuck":
                stuck_now = True
        result = Measurement(temperature, humidity, pressure)
        if stuck_now:
            if self._stuck is None:
                self._stuck = result
            return self._stuck
        self._stuck = None
        return result

    def read(self) -> Measurement:
        """Sample the model at the current simulated time."""
        t = self._elapsed()
        wall_s = self._wall()
        m = self._model(t, wall_s)
        self._last_t = t
        noisy = Measurement(
            m.temperature + self._noise.gauss(0.0, 0.05),
            None if m.humidity is None else m.humidity + self._noise.gauss(0.0, 0.3),
            None if m.pressure is None else m.pressure + self._noise.gauss(0.0, 0.05),
        )
        out = self._apply_faults(t, noisy)
        return Measurement(
            round(clamp("temperature", out.temperature), 2),
            None if out.humidity is None else round(clamp("humidity", out.humidity), 1),
            None if out.pressure is None else round(clamp("pressure", out.pressure), 2),
        )

    def close(self) -> None:
        """Nothing to release."""


def _placement_from_name(name: str, profile: Profile) -> str:
    if any(word in name for word in ("engine", "motor", "bay")) and profile.has_engine:
        return "engine"
    if "cabin" in name or (not profile.has_engine and "ambient" not in name):
        return "cabin"
    return "ambient"
