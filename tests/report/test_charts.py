"""Figure builders: the right traces, order and values from a ranking's JSON candidates."""

import math
import re

import numpy as np
import pytest

from resque_core.errors import ConfigError
from resque_core.report import charts as charts


def _cand(cid, kind, value, rank, *, shift=None, severity=None, per_class=None, ok=True):
    c = {
        "id": cid,
        "kind": kind,
        "label": cid,
        "status": "ok" if ok else "failed",
        "rank": rank if ok else None,
        "resque": value if ok else None,
    }
    if shift is not None:
        c["shift"], c["severity"] = shift, severity
    if ok:
        c["score"] = {"per_class": per_class or {}, "layer": "conv2", "cached": False}
    else:
        c["error"] = "data not found"
    return c


@pytest.fixture
def candidates():
    return [
        _cand(
            "noise-1",
            "dist",
            0.02,
            1,
            shift="gaussian_noise",
            severity=1,
            per_class={"0": 0.01, "1": 0.03},
        ),
        _cand(
            "noise-5",
            "dist",
            0.09,
            3,
            shift="gaussian_noise",
            severity=5,
            per_class={"0": 0.08, "1": 0.1},
        ),
        _cand("blur-3", "dist", 0.05, 2, shift="gaussian_blur", severity=3, per_class={"1": 0.05}),
        _cand("letters", "task", 0.7, 2, per_class={"A": 0.6, "B": 0.8}),
        _cand("parity", "task", 0.4, 1, per_class={"even": 0.3, "odd": 0.5}),
        _cand("broken", "task", None, None, ok=False),
    ]


def test_ranking_bars_one_panel_per_kind_in_rank_order(candidates):
    fig = charts.ranking_bars(candidates)
    dist, task = fig.data
    assert list(dist.y) == ["1. noise-1", "2. blur-3", "3. noise-5"]
    assert list(dist.x) == [0.02, 0.05, 0.09]
    assert list(task.y) == ["1. parity", "2. letters"]
    # Separate value axes: the two estimators are not comparable.
    assert dist.xaxis != task.xaxis
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [charts.KIND_TITLES["dist"], charts.KIND_TITLES["task"]]


def test_ranking_bars_leaves_out_failed_and_handles_one_kind(candidates):
    only_tasks = [c for c in candidates if c["kind"] == "task"]
    fig = charts.ranking_bars(only_tasks)
    assert len(fig.data) == 1
    assert "broken" not in " ".join(fig.data[0].y)


def test_ranking_bars_without_scores_shows_a_note():
    fig = charts.ranking_bars([_cand("broken", "task", None, None, ok=False)])
    assert not fig.data
    assert fig.layout.annotations[0].text == "No scored candidates yet"


def test_severity_lines_one_line_per_shift_sorted_by_severity(candidates):
    fig = charts.severity_lines(candidates)
    by_name = {t.name: t for t in fig.data}
    # labels that are not "<name>, severity <n>" fall back to the shift's name in words
    assert set(by_name) == {"Gaussian noise", "Gaussian blur"}
    assert list(by_name["Gaussian noise"].x) == [1, 5]
    assert list(by_name["Gaussian noise"].y) == [0.02, 0.09]
    assert list(fig.layout.yaxis.range) == [0.0, 1.0]  # RESQUE_dist's whole range, from 0


def test_class_heatmap_rows_in_rank_order_and_missing_cells_blank(candidates):
    fig = charts.class_heatmap(candidates, kind="dist")
    heat = fig.data[0]
    assert list(heat.y) == ["1. noise-1", "2. blur-3", "3. noise-5"]
    assert list(heat.x) == ["0", "1"]
    assert math.isnan(heat.z[1][0]) and heat.z[1][1] == 0.05
    tasks = charts.class_heatmap(candidates, kind="task").data[0]
    assert list(tasks.x) == ["even", "odd", "A", "B"]


def test_class_heatmap_rejects_an_unknown_kind(candidates):
    with pytest.raises(
        ConfigError, match=re.escape("unknown candidate kind 'both'; allowed: dist, task")
    ):
        charts.class_heatmap(candidates, kind="both")


def test_layer_sweep_keeps_layer_order_and_gaps():
    fig = charts.layer_sweep([("conv1", 0.1), ("conv2", None), ("fc", 0.3)], title="noise")
    line = fig.data[0]
    assert list(line.x) == ["conv1", "conv2", "fc"]
    assert line.y[0] == 0.1 and math.isnan(line.y[1])
    assert fig.layout.title.text == "noise"


def test_shift_preview_grid_of_originals_and_severities():
    rng = np.random.default_rng(0)
    original = rng.random((3, 1, 8, 8))
    shifted = {5: np.clip(original + 0.2, 0, 1), 1: original}
    fig = charts.shift_preview(original, shifted, labels=["a", "b", "c"], shift_name="noise")
    assert len(fig.data) == 3 * 3
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:3] == ["original", "noise 1", "noise 5"]
    first = fig.data[0].z
    assert np.asarray(first).shape == (8, 8, 3)
    assert np.asarray(first)[0, 0, 0] == round(original[0, 0, 0, 0] * 255)


def test_shift_preview_rejects_mismatched_shapes():
    original = np.zeros((2, 1, 8, 8))
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "shifted images for severity 3 have shape (1, 8, 8, 3), expected (2, 8, 8, 3)"
        ),
    ):
        charts.shift_preview(original, {3: np.zeros((1, 1, 8, 8))})
    with pytest.raises(ConfigError, match=re.escape("preview images must be [N, 1 or 3, H, W]")):
        charts.shift_preview(np.zeros((2, 2, 8, 8)), {})


def test_user_text_is_shown_as_text_not_html():
    link = '<a href="https://example.com">click</a> & co'
    c = _cand("evil", "task", 0.3, 1, per_class={"<b>cls</b>": 0.3})
    c["label"] = link
    escaped = '&lt;a href="https://example.com"&gt;click&lt;/a&gt; &amp; co'
    bars = charts.ranking_bars([c])
    assert bars.data[0].y == (f"1. {escaped}",)
    heat = charts.class_heatmap([c], kind="task")
    assert heat.data[0].y == (f"1. {escaped}",)
    assert heat.data[0].x == ("&lt;b&gt;cls&lt;/b&gt;",)
    sweep = charts.layer_sweep([("<i>conv</i>", 0.1)], title=link)
    assert sweep.layout.title.text == escaped and sweep.data[0].x == ("&lt;i&gt;conv&lt;/i&gt;",)


def test_ids_shift_names_and_run_labels_are_escaped_once():
    c = _cand("<i>d</i>", "dist", 0.2, 1, shift="<b>s</b>", severity=2)
    assert list(charts.ranking_bars([c]).data[0].customdata[0]) == ["&lt;i&gt;d&lt;/i&gt;"]
    line = charts.severity_lines([c]).data[0]
    assert line.name == "&lt;b&gt;s&lt;/b&gt;"
    assert "<b>" not in line.hovertemplate and "%{fullData.name}" in line.hovertemplate
    run = {
        "candidate_id": "r",
        "kind": "dist",
        "label": "x<b>y",
        "epochs": 2,
        "predicted": {"epochs": 2.5, "epochs_interval": [1.0, 4.0]},
    }
    point = charts.predicted_vs_measured([run], "epochs").data[0]
    assert point.text == ("x&lt;b&gt;y",)
    named = charts.predicted_vs_measured([run], "epochs", labels={"r": "a & b"}).data[0]
    assert named.text == ("a &amp; b",)


def test_training_curves_one_line_per_candidate_and_the_target():
    fig = charts.training_curves({"x<b>y": [0.5, 0.8, 0.9], "parity": [0.95]}, target=0.9)
    first, second = fig.data
    assert (first.name, second.name) == ("x&lt;b&gt;y", "parity")
    assert list(first.x) == [1, 2, 3] and list(first.y) == [0.5, 0.8, 0.9]
    assert list(second.x) == [1]
    (target,) = fig.layout.shapes
    assert target.y0 == target.y1 == 0.9 and target.line.dash == "dot"
    empty = charts.training_curves({})
    assert not empty.data
    assert empty.layout.annotations[0].text == "No candidate needed a training epoch"


def _costed(cid, kind, value, rank, epochs, kwh, label=None):
    c = _cand(cid, kind, value, rank)
    c["label"] = label or cid
    c["predicted"] = {
        "resque": value,
        "epochs": epochs,
        "epochs_interval": [epochs * 0.5, epochs * 2],
        "energy_kwh": kwh,
        "energy_kwh_interval": [kwh * 0.5, kwh * 2],
        "co2_kg": kwh * 0.4,
        "co2_kg_interval": [kwh * 0.2, kwh * 0.8],
        "level": 0.8,
    }
    return c


def test_severity_legend_uses_the_labels_and_real_sets_are_reference_lines():
    cands = [
        _cand("n1", "dist", 0.02, 1, shift="gaussian_noise", severity=1),
        _cand("n3", "dist", 0.05, 2, shift="gaussian_noise", severity=3),
        _cand("scans", "dist", 0.3, 3),
    ]
    cands[0]["label"], cands[1]["label"] = "Sensor noise, severity 1", "Sensor noise, severity 3"
    cands[2]["label"] = "Phone scans"
    fig = charts.severity_lines(cands)
    line, real = fig.data
    assert line.name == "Sensor noise" and list(line.x) == [1, 3]
    assert real.name == "Phone scans (real data)" and list(real.y) == [0.3, 0.3]
    assert real.line.dash == "dash"


def test_cost_bars_in_rank_order_with_interval_whiskers_in_human_units():
    cands = [
        _costed("b", "dist", 0.2, 2, 1.5, 3e-4, "Blur"),
        _costed("a", "dist", 0.1, 1, 1.0, 2e-4, "Noise"),
        _costed("t", "task", 0.4, 3, 2.0, 5e-4, "Letters"),
        _cand("broken", "task", None, None, ok=False),
    ]
    fig = charts.cost_bars(cands)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["epochs", "energy (Wh)", "CO2e (g)"]
    shifts_energy = [t for t in fig.data if t.xaxis == "x2" and t.legendgroup == "dist"][0]
    assert list(shifts_energy.y) == ["1. Noise", "2. Blur"]
    assert list(shifts_energy.x) == pytest.approx([0.2, 0.3])  # Wh
    # whiskers reach the interval: [0.5x, 2x] around the point
    assert list(shifts_energy.error_x.array) == pytest.approx([0.2, 0.3])
    assert list(shifts_energy.error_x.arrayminus) == pytest.approx([0.1, 0.15])
    assert "80% intervals" in fig.layout.title.text
    assert (
        charts.cost_bars([_cand("a", "dist", 0.1, 1)])
        .layout.annotations[0]
        .text.startswith("No predicted costs")
    )


def test_resque_against_cost_one_panel_per_kind_from_zero():
    cands = [_costed("a", "dist", 0.1, 1, 1.0, 2e-4), _costed("t", "task", 0.4, 2, 2.0, 5e-4)]
    fig = charts.resque_vs_cost(cands, "energy_kwh")
    dist, task = fig.data
    assert list(dist.x) == [0.1] and list(dist.y) == pytest.approx([0.2])
    assert list(fig.layout.xaxis.range) == [0.0, 1.0]
    assert list(fig.layout.xaxis2.range) == [0.0, 1.5]
    with pytest.raises(ConfigError):
        charts.resque_vs_cost(cands, "watts")


def test_human_units_and_everyday_equivalents():
    assert charts.energy_text(0.00021) == "0.21 Wh"
    assert charts.energy_text(2.5) == "2.5 kWh"
    assert charts.co2_text(8e-5) == "0.08 g CO2e"
    assert charts.energy_text(None) == "—"
    assert charts.energy_text(2e-9) == "0.002 mWh"
    assert charts.everyday(0.03) == "about 2 smartphone charges (15 Wh each)"
    assert charts.everyday(0.001, 0.00012) == (
        "about 6 minutes of a 10 W LED bulb; about 1 m driven by an average petrol car (~120 g/km)"
    )


def test_training_curves_start_at_epoch_zero_with_a_legend():
    fig = charts.training_curves({"a": [0.7, 0.92]}, target=0.9, initial={"a": 0.3, "b": 0.95})
    a, b = fig.data
    assert list(a.x) == [0, 1, 2] and list(a.y) == [0.3, 0.7, 0.92]
    assert list(b.x) == [0] and fig.layout.showlegend
    assert fig.layout.annotations[0].text == "target 90%"
