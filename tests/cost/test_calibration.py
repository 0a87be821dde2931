"""Calibration on the user's own model: chooser, form choice by leave-one-out error, conformal
intervals, and uncalibrated answers that show no prior number."""

from __future__ import annotations

import numpy as np
import pytest

from resque_core.cost import (
    PRIORS,
    CandidateCost,
    Option,
    Signals,
    choose_for_calibration,
    conformal_band,
    describe,
    fit_model,
    select_form,
)
from resque_core.cost.calibration import apply_calibrations
from resque_core.errors import ConfigError


# ----------------------------------------------------------------------------- chooser
def _options(n=20, families=("noise", "blur", "rotation", "contrast"), cost=lambda i: 1.0):
    return [
        Option(
            id=f"s{i}",
            kind="dist",
            resque=i / n,
            family=families[i % len(families)],
            seconds=cost(i),
            kwh=cost(i) / 1000,
        )
        for i in range(n)
    ]


def test_chooser_spreads_over_the_resque_range_and_over_families():
    picks = choose_for_calibration(_options(), 4)
    values = sorted(o.resque for o in picks)
    # one pick in each quarter of the ranked RESQUE values
    assert [int(v * 20) // 5 for v in values] == [0, 1, 2, 3]
    assert len({o.family for o in picks}) == 4


def test_chooser_prefers_cheap_candidates_within_a_band():
    # cost rises with the index; within each band the cheapest unseen-family option wins
    picks = choose_for_calibration(_options(cost=lambda i: 1.0 + (i % 5)), 4)
    assert all(int(o.id[1:]) % 5 in (0, 1) for o in picks), [o.id for o in picks]


def test_chooser_shares_k_between_kinds_and_skips_known_epochs():
    opts = _options(10) + [
        Option(id=f"t{i}", kind="task", resque=0.1 * i, seconds=1.0) for i in range(4)
    ]
    opts[0] = Option(id="s0", kind="dist", resque=0.0, family="noise", known=True)
    picks = choose_for_calibration(opts, 5)
    kinds = [o.kind for o in picks]
    assert kinds.count("dist") >= 1 and kinds.count("task") >= 1 and len(picks) == 5
    assert "s0" not in {o.id for o in picks}


def test_chooser_gives_each_kind_two_picks_or_none():
    # one run of a kind calibrates nothing for it, so a kind never gets a single pick while
    # it has more candidates
    opts = _options(19) + [
        Option(id=f"t{i}", kind="task", resque=0.1 * i, seconds=1.0) for i in range(5)
    ]

    def kinds(k):
        picked = [o.kind for o in choose_for_calibration(opts, k)]
        return picked.count("dist"), picked.count("task")

    assert [kinds(k) for k in (1, 2, 3, 4, 5, 8)] == [
        (1, 0),
        (2, 0),
        (3, 0),
        (2, 2),
        (3, 2),
        (6, 2),
    ]
    lone = _options(6) + [Option(id="t0", kind="task", resque=0.5, seconds=1.0)]
    assert [o.id for o in choose_for_calibration(lone, 3)].count("t0") == 1  # its only one


def test_chooser_respects_the_budget():
    opts = _options(cost=lambda i: 1.0 + i)  # 1 .. 20 s
    unlimited = choose_for_calibration(opts, 5)
    limited = choose_for_calibration(opts, 5, budget_seconds=12.0)
    assert sum(o.seconds for o in unlimited) > 12.0
    assert sum(o.seconds for o in limited) <= 12.0 and limited
    energy = choose_for_calibration(opts, 5, budget_kwh=0.012)
    assert sum(o.kwh for o in energy) <= 0.012
    with pytest.raises(ConfigError, match="one budget"):
        choose_for_calibration(opts, 3, budget_seconds=1, budget_kwh=1)
    with pytest.raises(ConfigError, match="at least 1"):
        choose_for_calibration(opts, 0)


# ----------------------------------------------------------------------------- forms
def _points(rng, n, families=("a", "b")):
    return [
        Signals(
            resque=float(rng.uniform(0.05, 0.5)),
            family=families[i % len(families)],
            start_accuracy=float(rng.uniform(0.3, 0.85)),
            target_accuracy=0.9,
            head_kept=True,
        )
        for i in range(n)
    ]


def test_loo_chooses_the_per_family_form_when_slopes_differ():
    rng = np.random.default_rng(0)
    pts = _points(rng, 14)
    y = [1 + (40 if p.family == "a" else 4) * p.resque + rng.normal(0, 0.3) for p in pts]
    choice = select_form(pts, y)
    assert choice.form == "per_family"
    assert choice.loo_mae < 0.5 * choice.baseline_loo_mae
    assert choice.table["linear"] > choice.loo_mae


def test_loo_chooses_the_gap_form_when_epochs_follow_the_accuracy_gap():
    rng = np.random.default_rng(1)
    pts = _points(rng, 12)
    y = [2 + 30 * p.gap + rng.normal(0, 0.3) for p in pts]
    assert select_form(pts, y).form == "gap"


def test_loo_keeps_the_mean_when_nothing_explains_the_epochs():
    rng = np.random.default_rng(2)
    pts = _points(rng, 10)
    y = [5 + rng.normal(0, 0.5) for _ in pts]
    choice = select_form(pts, y)
    assert choice.form == "mean"
    assert choice.loo_mae == pytest.approx(choice.baseline_loo_mae)


def test_forms_that_need_more_runs_are_not_tried():
    rng = np.random.default_rng(3)
    pts = _points(rng, 3)
    choice = select_form(pts, [1.0, 2.0, 4.0])
    assert choice.table["resque_gap"] is None and choice.table["per_family"] is None
    assert choice.table["linear"] is not None
    with pytest.raises(ConfigError, match="at least 2"):
        select_form(pts[:1], [1.0])


# ----------------------------------------------------------------------------- conformal
@pytest.mark.parametrize("n", [9, 19])
def test_conformal_intervals_cover_at_the_nominal_rate(n):
    rng = np.random.default_rng(n)
    covered, draws = 0, 400
    for _ in range(draws):
        pts = _points(rng, n + 1, families=("a",))
        y = [3 + 10 * p.resque + rng.standard_t(4) for p in pts]
        choice = select_form(pts[:n], y[:n], forms=["linear"])
        band = conformal_band(choice.residuals, 0.8)
        assert band["method"] == "conformal"
        from resque_core.cost.forms import FORMS

        pred = FORMS["linear"].predict(choice.params, pts[n])
        covered += abs(pred - y[n]) <= band["half_width"]
    rate = covered / draws
    assert 0.76 <= rate <= 0.92, rate


def test_few_runs_get_a_t_band_at_least_as_wide_as_the_largest_residual():
    band = conformal_band([0.5, 1.0, 2.0], 0.8)
    assert band["method"].startswith("t") and band["half_width"] >= 2.0
    assert conformal_band([1, 2, 3, 4], 0.8)["half_width"] == 4.0


# ----------------------------------------------------------------------------- calibration
def _run(cid, resque, epochs, start, family="noise", kwh_per_epoch=1e-5, ratio=1.0):
    return {
        "candidate_id": cid,
        "kind": "dist",
        "resque": resque,
        "epochs": epochs,
        "energy_kwh": epochs * kwh_per_epoch * ratio,
        "status": "completed",
        "censored": False,
        "probe": {"kwh_per_epoch": kwh_per_epoch},
        "signals": Signals(
            resque=resque,
            family=family,
            start_accuracy=start,
            target_accuracy=0.9,
            head_kept=True,
        ).to_dict(),
    }


def test_fit_model_leaves_runs_already_at_target_out_and_states_its_basis():
    runs = [
        _run("a", 0.02, 0, 0.95),
        _run("b", 0.1, 2, 0.8, ratio=0.9),
        _run("c", 0.2, 5, 0.6, ratio=1.1),
        _run("d", 0.3, 8, 0.4, ratio=1.0),
    ]
    cal = fit_model("dist", runs)
    assert cal.basis == "calibrated" and cal.n == 4
    assert cal.model["fitted_runs"] == 3 and cal.model["at_target_runs"] == 1
    assert cal.model["energy_ratio"]["low"] == pytest.approx(0.9)
    # a candidate already at its target is predicted 0 with a zero-width interval
    at = Signals(resque=0.3, start_accuracy=0.95, target_accuracy=0.9, head_kept=True)
    assert cal.mean(0.3, at) == 0.0 and cal.interval(0.3, 0.8, at) == (0.0, 0.0)
    text = describe(cal)
    assert "4 retrains" in text and "LOO MAE" in text and cal.form in text
    assert describe(PRIORS["dist"]) == "uncalibrated"
    with pytest.raises(ConfigError, match="needed training"):
        fit_model("dist", runs[:2])


class _Cand:
    def __init__(self, cid, kind="shift", estimator="dist"):
        self.id, self.kind, self.estimator, self.shift = cid, kind, estimator, "gaussian_noise:1"


class _Score:
    def __init__(self, value):
        self.value, self.per_class = value, {}


def test_an_uncalibrated_ranking_shows_no_prior_number_as_a_prediction():
    from resque_core.cost.predict import CostSettings, Prediction
    from resque_core.measure.carbon import carbon_intensity

    probe = {
        "joules_per_epoch": 36.0,
        "joules_per_epoch_sd": 1.0,
        "seconds_per_epoch": 2.0,
        "train_batches_per_epoch": 10,
        "eval_batches_per_epoch": 2,
        "batches_measured": 15,
        "repeats": 3,
        "method": "replay",
        "basis": "replay",
        "kwh_per_epoch": 1e-5,
    }
    prior_prediction = Prediction(
        resque=0.2,
        epochs=1.5,
        epochs_interval=(0.0, 4.0),
        energy_kwh=1.5e-5,
        energy_kwh_interval=(0.0, 4e-5),
        co2_kg=1e-5,
        co2_kg_interval=(0.0, 2e-5),
        level=0.8,
        basis="prior",
        kwh_per_epoch=1e-5,
        energy_method="replay",
        energy_basis="replay",
        probe=probe,
    )
    cands = [_Cand(f"c{i}") for i in range(6)]
    scored = [(c, _Score(0.05 * (i + 1))) for i, c in enumerate(cands)]
    costs = {c.id: CandidateCost(prior_prediction) for c in cands}

    class _Opts:
        settings = CostSettings(carbon_intensity())

    out, uncalibrated, offer = apply_calibrations(
        None, scored, costs, dict(PRIORS), scorer=None, options=_Opts(), store=None
    )
    assert uncalibrated == {c.id for c in cands}
    assert all(out[c.id].prediction is None for c in cands)
    # the offer to calibrate: which candidates, and a rough cost that is labelled as such
    assert 1 <= len(offer["candidates"]) <= 5 and offer["estimated_seconds"] > 0
    assert "not a prediction" in offer["basis"]
