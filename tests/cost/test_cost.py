"""Cost model: calibration fits, intervals, Monte Carlo propagation, storage and budgets."""

import re

import numpy as np
import pytest
from scipy import stats

from resque_core.cost.predict import (
    PRIORS,
    Calibration,
    CostOptions,
    CostSettings,
    calibration_key,
    fit_calibration,
    load_calibrations,
    over_budget,
    predict_cost,
    save_calibrations,
)
from resque_core.errors import ConfigError
from resque_core.kinds import ESTIMATOR_KINDS
from resque_core.measure.carbon import carbon_intensity
from resque_core.retrain import EnergyProbe


def _probe(joules: float = 3600.0, sd: float = 0.0) -> EnergyProbe:
    return EnergyProbe(
        joules_per_epoch=joules,
        joules_per_epoch_sd=sd,
        seconds_per_epoch=1.0,
        train_batches_per_epoch=10,
        eval_batches_per_epoch=1,
        batches_measured=30,
        repeats=3,
        method="replay (test)",
        basis="replay",
    )


def _settings(rel: float = 0.0, pue: float = 1.0, **kw) -> CostSettings:
    intensity = carbon_intensity(override_g_per_kwh=500.0, pue=pue, relative_uncertainty=rel)
    return CostSettings(intensity, **kw)


# ----------------------------------------------------------------------------- fit
def test_fit_recovers_an_exact_line():
    x = [0.05, 0.1, 0.2, 0.3, 0.45]
    cal = fit_calibration(x, [2 + 30 * v for v in x], kind="dist")
    assert cal.slope == pytest.approx(30.0)
    assert cal.intercept == pytest.approx(2.0)
    assert cal.residual_sd == pytest.approx(0.0, abs=1e-9)
    assert cal.loo_mae == pytest.approx(0.0, abs=1e-9)
    assert (cal.basis, cal.n, cal.dof, cal.kind) == ("calibrated", 5, 3, "dist")
    assert cal.pearson_r == pytest.approx(1.0)


def test_fit_recovers_known_slope_under_noise():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.5, 200)
    y = 3 + 20 * x + rng.normal(0, 0.5, 200)
    cal = fit_calibration(x, y, kind="task")
    assert cal.slope == pytest.approx(20.0, abs=0.5)
    assert cal.intercept == pytest.approx(3.0, abs=0.15)
    assert cal.residual_sd == pytest.approx(0.5, rel=0.15)


def test_leave_one_out_matches_refitting():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 8)
    y = 1 + 5 * x + rng.normal(0, 1, 8)
    cal = fit_calibration(x, y, kind="dist")
    errors = []
    for i in range(8):
        keep = np.arange(8) != i
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        errors.append(y[i] - (intercept + slope * x[i]))
    assert cal.loo_mae == pytest.approx(np.abs(errors).mean())
    assert cal.loo_rmse == pytest.approx(np.sqrt(np.mean(np.square(errors))))


def test_intervals_widen_with_fewer_points():
    # same line, same +-1 residual pattern: only the number of points differs
    def fit(n):
        x = np.linspace(0, 0.5, n)
        y = 2 + 10 * x + np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        return fit_calibration(x, y, kind="dist")

    few, many = fit(4), fit(40)
    width = [np.diff(c.interval(0.25))[0] for c in (few, many)]
    assert width[0] > 1.5 * width[1]
    # the textbook interval: t(n-2) * s * sqrt(1 + 1/n + (x - mean)^2 / Sxx)
    lo, hi = many.interval(0.25, 0.8)
    half = stats.t.ppf(0.9, 38) * many.residual_sd * np.sqrt(1 + 1 / 40 + 0 / many.sxx)
    assert (hi - lo) / 2 == pytest.approx(half, rel=1e-6)


def test_interval_is_clipped_at_zero_epochs():
    cal = Calibration("dist", intercept=0.0, slope=1.0, residual_sd=5.0, dof=3, basis="prior")
    assert cal.interval(0.1)[0] == 0.0


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (
            [0.1, 0.2],
            [1, 2],
            "a dist calibration needs at least 3 measured runs, got 2: retrain more candidates",
        ),
        (
            [0.2, 0.2, 0.2],
            [1, 2, 3],
            "all 3 dist runs have the same RESQUE value (0.2): retrain candidates spread over "
            "the RESQUE range",
        ),
        (
            [0.1, 0.2, 0.3],
            [1, 2],
            "calibration needs one epoch count per RESQUE value, got (3,) and (2,)",
        ),
        ([0.1, 0.2, float("nan")], [1, 2, 3], "calibration points must be finite numbers"),
    ],
)
def test_fit_bad_input(x, y, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        fit_calibration(x, y, kind="dist")


# ----------------------------------------------------------------------------- storage
def test_calibrations_round_trip_and_fall_back_to_marked_priors(tmp_path):
    key = calibration_key("abc", {"lr": 0.001})
    assert key != calibration_key("abc", {"lr": 0.01})
    fresh = load_calibrations(tmp_path, key)
    assert fresh == PRIORS
    assert tuple(fresh) == ESTIMATOR_KINDS  # a prior for each estimator, in display order
    assert all(fresh[k].kind == k for k in ESTIMATOR_KINDS)
    assert {c.basis for c in fresh.values()} == {"prior"}
    assert all(c.source.startswith("prior:") for c in fresh.values())
    fitted = fit_calibration([0.1, 0.2, 0.4], [3, 5, 9], kind="dist")
    path = save_calibrations(tmp_path, key, {**fresh, "dist": fitted}, meta={"runs": ["r1"]})
    assert path.exists()
    loaded = load_calibrations(tmp_path, key)
    assert loaded["dist"] == fitted
    assert loaded["task"] == PRIORS["task"]  # priors are never stored
    assert load_calibrations(tmp_path, calibration_key("other", {})) == PRIORS


def test_unreadable_calibration_file(tmp_path):
    (tmp_path / "calibrations.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="; delete it to start over$"):
        load_calibrations(tmp_path, "k")


# ----------------------------------------------------------------------------- prediction
def _cal() -> Calibration:
    return Calibration(
        "dist",
        intercept=1.0,
        slope=10.0,
        residual_sd=0.5,
        dof=10,
        basis="calibrated",
        n=12,
        x_mean=0.2,
        sxx=1.0,
    )


def test_point_prediction_is_the_product_of_point_estimates():
    p = predict_cost(0.3, calibration=_cal(), probe=_probe(3600.0), settings=_settings(pue=1.2))
    assert p.epochs == pytest.approx(4.0)
    assert p.kwh_per_epoch == pytest.approx(0.001)
    assert p.energy_kwh == pytest.approx(0.004)
    assert p.co2_kg == pytest.approx(0.004 * 500 * 1.2 / 1000)
    assert p.basis == "calibrated" and p.level == 0.8
    d = p.to_dict()
    assert d["epochs_interval"] == list(p.epochs_interval)
    assert d["intensity"]["g_per_kwh"] == 500.0 and d["energy_method"] == "replay (test)"


def test_without_energy_or_intensity_spread_kwh_interval_follows_epochs():
    p = predict_cost(0.3, calibration=_cal(), probe=_probe(3600.0), settings=_settings())
    lo, hi = p.epochs_interval
    assert lo < 4.0 < hi
    assert p.energy_kwh_interval[0] == pytest.approx(lo * 0.001, rel=0.03)
    assert p.energy_kwh_interval[1] == pytest.approx(hi * 0.001, rel=0.03)
    assert p.co2_kg_interval[1] == pytest.approx(p.energy_kwh_interval[1] * 0.5, rel=1e-9)


def test_every_uncertainty_widens_the_co2_interval():
    base = predict_cost(0.3, calibration=_cal(), probe=_probe(), settings=_settings())
    grid = predict_cost(0.3, calibration=_cal(), probe=_probe(), settings=_settings(rel=0.3))
    probe = predict_cost(0.3, calibration=_cal(), probe=_probe(sd=900.0), settings=_settings())

    def width(p):
        return p.co2_kg_interval[1] - p.co2_kg_interval[0]

    assert width(grid) > 1.1 * width(base)
    assert width(probe) > 1.1 * width(base)
    assert np.diff(probe.energy_kwh_interval)[0] > np.diff(base.energy_kwh_interval)[0]


def test_monte_carlo_is_seeded():
    a = predict_cost(0.3, calibration=_cal(), probe=_probe(sd=500.0), settings=_settings(0.1))
    b = predict_cost(0.3, calibration=_cal(), probe=_probe(sd=500.0), settings=_settings(0.1))
    c = predict_cost(
        0.3, calibration=_cal(), probe=_probe(sd=500.0), settings=_settings(0.1, seed=1)
    )
    assert a == b
    assert a.co2_kg_interval != c.co2_kg_interval


def test_prior_predictions_are_marked():
    p = predict_cost(0.2, calibration=PRIORS["task"], probe=_probe(), settings=_settings())
    assert p.basis == "prior"
    assert p.calibration["source"].startswith("prior:")


def test_settings_and_budget_validation():
    with pytest.raises(ConfigError, match=r"^interval level must be in \(0, 1\), got 1.5$"):
        _settings(level=1.5)
    with pytest.raises(ConfigError, match="^Monte Carlo draws must be at least 100, got 10$"):
        _settings(draws=10)
    with pytest.raises(ConfigError, match="^budget max-kwh must be >= 0, got -1.0$"):
        CostOptions(settings=_settings(), max_kwh=-1.0)


def test_over_budget_phrases():
    p = predict_cost(0.3, calibration=_cal(), probe=_probe(3600.0), settings=_settings())
    assert over_budget(p) == []
    assert over_budget(p, max_kwh=0.01, max_co2_kg=0.01) == []
    assert over_budget(p, max_kwh=0.001, max_co2_kg=0.001) == [
        "0.004 kWh > 0.001 kWh",
        "0.002 kg CO2e > 0.001 kg CO2e",
    ]
