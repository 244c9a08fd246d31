"""The simulated meter's daily curves and its cumulative registers (no network)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meter_signing.simulator import MeterState, Profile, load_power_w, solar_power_w

# 00:00 local (UTC+8) on a fixed day.
MIDNIGHT_LOCAL = datetime(2026, 6, 1, tzinfo=UTC).timestamp() - 8 * 3600


class ManualClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_solar_is_a_bell_from_sunrise_to_sunset_and_zero_export_at_night() -> None:
    capacity = 5_000.0
    assert solar_power_w(12.0, capacity) == pytest.approx((0.0, capacity))
    for night in (0.0, 3.0, 5.99, 18.0, 22.0):
        imported, exported = solar_power_w(night, capacity)
        assert exported == 0.0
        assert imported == 2.0  # inverter standby
    morning = [solar_power_w(hour, capacity)[1] for hour in (7, 8, 9, 10, 11, 12)]
    assert morning == sorted(morning)  # rises to noon
    assert solar_power_w(9.0, capacity)[1] == pytest.approx(solar_power_w(15.0, capacity)[1])


def test_load_has_a_base_and_a_larger_evening_than_morning_peak() -> None:
    capacity = 4_000.0
    base = load_power_w(3.0, capacity)[0]
    morning = load_power_w(7.5, capacity)[0]
    evening = load_power_w(19.5, capacity)[0]
    assert base == pytest.approx(0.15 * capacity, rel=0.01)
    assert base < morning < evening <= capacity
    assert all(load_power_w(hour / 2, capacity)[1] == 0.0 for hour in range(48))


def test_a_simulated_day_at_speed_integrates_to_the_curves_energy() -> None:
    clock = ManualClock()
    state = MeterState(
        Profile.SOLAR, capacity_w=5_000, speed=3_600, clock=clock, start_sim=MIDNIGHT_LOCAL
    )
    registers = []
    for _ in range(24):  # one real second = one simulated hour
        clock.now += 1.0
        registers.append(state.advance())
    exports = [export for _, export in registers]
    assert exports == sorted(exports)  # cumulative: never decreases
    # Integral of capacity x sin^2 over 12 h is capacity x 6 h = 30 kWh.
    assert exports[-1] == pytest.approx(30_000, rel=0.001)
    assert exports[5] == 0.0  # nothing exported before 06:00
    # Standby import over the 12 night hours at 2 W, with one ramp step at each edge.
    assert registers[-1][0] == pytest.approx(24, abs=0.1)


def test_speed_zero_freezes_the_registers() -> None:
    clock = ManualClock()
    state = MeterState(Profile.LOAD, speed=0, clock=clock, import_wh=1_000.0)
    clock.now += 3_600
    assert state.advance() == (1_000.0, 0.0)


def test_a_load_meter_imports_and_never_exports() -> None:
    clock = ManualClock()
    state = MeterState(
        Profile.LOAD, capacity_w=4_000, speed=60, clock=clock, start_sim=MIDNIGHT_LOCAL
    )
    clock.now += 60  # one simulated hour at 00:00-01:00: base load only
    imported, exported = state.advance()
    assert imported == pytest.approx(600, rel=0.02)
    assert exported == 0.0


@pytest.mark.parametrize("bad", [{"speed": -1.0}, {"capacity_w": 0.0}, {"sunspec_wh_sf": 11}])
def test_invalid_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MeterState(Profile.SOLAR, **bad)  # type: ignore[arg-type]
