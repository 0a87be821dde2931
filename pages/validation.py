"""Validation: retrain candidates for real, compare with the predictions, recalibrate."""

import json

import plotly.graph_objects as go
import streamlit as st

from resque_core.carbon import carbon_intensity, countries
from resque_core.cost import CostSettings, calibration_key, load_calibrations
from resque_core.energy import METERS, make_meter
from resque_core.retrain import AUGMENTATIONS, RetrainConfig
from resque_core.validation import MEASURES, ValidationJob, recalibrate, suggest_candidates
from ui import cached, jobs, state, widgets
from ui.feedback import user_errors

POLL_SECONDS = 0.5
_JOBS = "val_jobs"
_RECAL = "val_recalibrated"
_KIND_COLOURS = {"dist": "#2f6db5", "task": "#d9822b"}
_MEASURE_TITLES = {
    "epochs": "epochs",
    "grad_norm": "gradient norm",
    "param_change": "parameter change",
    "energy_kwh": "energy (kWh)",
    "co2_kg": "CO2e (kg)",
}

st.title("Validation")
st.caption(
    "Retrain a few candidates for real: fine-tune a copy of the checkpoint until held-out "
    "accuracy reaches the target, measuring epochs, gradient norm, parameter change, energy and "
    "CO2. The cost model's prediction is recorded *before* each retraining, so you see how well "
    "RESQUE predicted the cost; the measurements then recalibrate the predictions."
)

plan = state.current_plan()
ranking = jobs.ranking_view(plan, key_prefix="val_rank")
if ranking is None:
    st.stop()
scored = [c for c in ranking["candidates"] if c["status"] == "ok"]
if not scored:
    st.info("No candidate could be scored, so none can be validated.", icon=":material/info:")
    st.stop()
labels = {c["id"]: f"{c['label']} ({widgets.KIND_LABELS[c['kind']]})" for c in scored}

# ----------------------------------------------------------------------------- choices
count = st.number_input(
    "Suggest a spread of",
    min_value=1,
    max_value=len(scored),
    value=min(3, len(scored)),
    key="val_count",
    help="Candidates spread over each kind's RESQUE range, lowest to highest.",
)
suggested = suggest_candidates([(c["id"], c["kind"], c["resque"]) for c in scored], int(count))
chosen = st.multiselect(
    "Candidates to retrain",
    list(labels),
    default=suggested,
    format_func=labels.get,
    key="val_candidates",
)
with st.expander("Retraining and cost settings", icon=":material/tune:"):
    left, right = st.columns(2)
    target = left.slider(
        "Target held-out accuracy",
        0.5,
        1.0,
        RetrainConfig.target_accuracy,
        0.01,
        key="val_target",
        help="Retraining stops when accuracy on the candidate's held-out 20% reaches this.",
    )
    augment = left.selectbox(
        "Augmentation",
        AUGMENTATIONS,
        key="val_augment",
        help="reference: flip, rotation, affine, colour jitter. no_flip: the same without the "
        "flip (mirrored digits or letters are other symbols). none: no augmentation.",
    )
    max_epochs = left.number_input("Max epochs", 1, 250, 30, key="val_max_epochs")
    budget = left.number_input(
        "Time budget per candidate (s, 0 = none)", 0.0, 86400.0, 0.0, 10.0, key="val_time_budget"
    )
    meter_name = right.selectbox(
        "Energy meter",
        METERS,
        key="val_meter",
        help="auto = codecarbon (CPU, RAM and the run's GPU; an estimate without RAPL). nvml: "
        "GPU energy counter only. replay: a fixed 30 W, not a measurement.",
    )
    table = countries()
    country = right.selectbox(
        "Carbon intensity of",
        ["world", *table],
        format_func=lambda c: "World average" if c == "world" else f"{table[c]} ({c})",
        key="val_country",
    )
    pue = right.number_input("PUE", 1.0, 3.0, 1.0, 0.05, key="val_pue")

with user_errors("Check the settings") as box:
    device = cached.device_name(plan.run)
    config = RetrainConfig(
        target_accuracy=float(target),
        augment=augment,
        max_epochs=int(max_epochs),
        time_budget_s=float(budget) or None,
        seed=plan.run.seed,
        device=device,
    )
    intensity = carbon_intensity(country=None if country == "world" else country, pue=float(pue))
    settings = CostSettings(intensity)
    make_meter(meter_name, device=device)
if box.failed:
    st.stop()

# ----------------------------------------------------------------------------- the job
job_store = st.session_state.setdefault(_JOBS, {})
plan_key = state.plan_key()
job: ValidationJob | None = job_store.get(plan_key)
running = job is not None and job.running

if st.button(
    f"Retrain {len(chosen)} candidate{'s' if len(chosen) != 1 else ''}",
    key="val_start",
    type="primary",
    icon=":material/model_training:",
    disabled=running or not chosen,
):
    with user_errors("Could not start the validation") as box:
        job = ValidationJob(
            plan,
            candidates=chosen,
            config=config,
            settings=settings,
            meter=meter_name,
            store=cached.result_store(),
            runs=cached.run_store(),
            cache_dir=cached.cache_dir(),
        ).start()
        job_store[plan_key] = job
        running = True


def _progress(job: ValidationJob) -> None:
    @st.fragment(run_every=POLL_SECONDS)
    def panel() -> None:
        if not job.running:
            st.rerun()
        n = max(job.total, 1)
        part = job.stage_done / job.stage_total if job.stage_total else 0.0
        current = labels.get(job.current, job.current or "scoring")
        text = f"Candidate {job.index + 1} of {n}: {current}"
        if job.cancelling:
            text = "Cancelling… (stops after the current batch; measurements are kept)"
        elif job.stage:
            text += f" — {job.stage} {job.stage_done}/{job.stage_total} batches"
        st.progress(min(1.0, (len(job.runs) + part) / n), text=text)
        info, stop = st.columns([5, 1])
        info.caption(f"{len(job.runs)} of {n} done · {job.elapsed:.0f} s")
        stop.button(
            "Cancel",
            key="val_job_cancel",
            icon=":material/stop_circle:",
            on_click=job.cancel,
            disabled=job.cancelling,
            width="stretch",
        )
        if job.epochs:
            st.line_chart(
                {
                    "epoch": [e["epoch"] for e in job.epochs],
                    "held-out accuracy": [e["held_accuracy"] for e in job.epochs],
                    "train accuracy": [e["train_accuracy"] for e in job.epochs],
                },
                x="epoch",
                y=["held-out accuracy", "train accuracy"],
                height=220,
            )
        if job.runs:
            st.dataframe(_rows(job.runs), hide_index=True, width="stretch")

    panel()


def _with_interval(p: dict, measure: str, scale: float = 1.0, fmt: str = ".2g") -> str | None:
    """'value [low, high]' of a prediction (None for a run that was never predicted)."""
    if not p:
        return None
    lo, hi = (v * scale for v in p[f"{measure}_interval"])
    return f"{p[measure] * scale:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _rows(runs: list[dict]) -> list[dict]:
    return [
        {
            "candidate": labels.get(r["candidate_id"], r["candidate_id"]),
            "RESQUE": r["resque"],
            "epochs": r["epochs"],
            "predicted epochs": _with_interval(r["predicted"], "epochs", fmt=".1f"),
            "kWh": r["energy_kwh"],
            "predicted kWh": _with_interval(r["predicted"], "energy_kwh"),
            "g CO2e": r["co2_kg"] * 1000 if r["co2_kg"] is not None else None,
            "predicted g CO2e": _with_interval(r["predicted"], "co2_kg", scale=1000),
            "stop": r["stop_reason"] or r["error"],
            "prediction basis": (r["predicted"] or {}).get("basis"),
            "id": r["candidate_id"],
        }
        for r in runs
    ]


def _predicted_vs_measured(runs: list[dict], measure: str) -> go.Figure:
    """Measured value (x) against the prediction made before retraining (y), with its 80%
    interval as an error bar; the diagonal is a perfect prediction."""
    fig = go.Figure()
    done = [r for r in runs if r["predicted"] and r[measure] is not None]
    for kind in ("dist", "task"):
        pts = [r for r in done if r["kind"] == kind]
        if not pts:
            continue
        y = [r["predicted"][measure] for r in pts]
        lo = [r["predicted"][f"{measure}_interval"][0] for r in pts]
        hi = [r["predicted"][f"{measure}_interval"][1] for r in pts]
        fig.add_trace(
            go.Scatter(
                x=[r[measure] for r in pts],
                y=y,
                mode="markers",
                name=widgets.KIND_LABELS[kind],
                marker={"color": _KIND_COLOURS[kind], "size": 10},
                text=[labels.get(r["candidate_id"], r["candidate_id"]) for r in pts],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [h - v for h, v in zip(hi, y, strict=True)],
                    "arrayminus": [v - low for v, low in zip(y, lo, strict=True)],
                },
                hovertemplate="%{text}<br>measured %{x:.3g}<br>predicted %{y:.3g}<extra></extra>",
            )
        )
    top = max([r[measure] for r in done] + [r["predicted"][measure] for r in done] + [1e-12])
    fig.add_trace(
        go.Scatter(
            x=[0, top],
            y=[0, top],
            mode="lines",
            line={"dash": "dot", "color": "#888"},
            name="perfect prediction",
            hoverinfo="skip",
        )
    )
    title = _MEASURE_TITLES[measure]
    fig.update_layout(
        template="plotly_white",
        xaxis_title=f"measured {title}",
        yaxis_title=f"predicted {title} (80% interval)",
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


def _correlation_rows(correlation: dict) -> list[dict]:
    rows = []
    for kind, table in correlation.items():
        for m in MEASURES:
            c = table[m]
            rows.append(
                {
                    "kind": widgets.KIND_LABELS[kind],
                    "measure": _MEASURE_TITLES[m],
                    "n": c["n"],
                    "Pearson": c["pearson"],
                    "Spearman": c["spearman"],
                    "Kendall": c["kendall"],
                    "note": c.get("note", ""),
                }
            )
    return rows


def _calibration_rows(calibrations: dict) -> list[dict]:
    return [
        {
            "kind": widgets.KIND_LABELS[kind],
            "basis": c["basis"],
            "epochs =": f"{c['intercept']:.2f} + {c['slope']:.2f} × RESQUE",
            "runs": c["n"],
            "residual sd": c["residual_sd"],
            "leave-one-out MAE (epochs)": c["loo_mae"],
            "source": c["source"],
        }
        for kind, c in calibrations.items()
    ]


if running:
    _progress(job)
    st.stop()
if job is None:
    with user_errors("Could not read the stored calibrations") as box:
        key = calibration_key(
            cached.checkpoint(plan.resolved_model(), device).sha256, config.procedure()
        )
        stored = load_calibrations(cached.cache_dir(), key)
    if not box.failed:
        st.caption("Calibrations the predictions will use (RESQUE → epochs):")
        st.dataframe(
            _calibration_rows({k: c.to_dict() for k, c in stored.items()}),
            hide_index=True,
            key="val_calibration_before",
        )
    st.stop()
if job.error is not None:
    st.error(f"The validation stopped: {job.error}", icon="⚠️")
    st.stop()

# ----------------------------------------------------------------------------- results
doc = job.result
runs = doc["runs"]
if doc["cancelled"]:
    st.warning(
        f"Cancelled: {len(runs)} candidate(s) below; a cancelled retraining keeps the epochs it "
        "finished and the energy it used.",
        icon=":material/pause_circle:",
    )
measured = [r for r in runs if r["epochs"] is not None]
cols = st.columns(4)
cols[0].metric("Retrained", f"{len(measured)} / {len(runs)}")
cols[1].metric("Epochs in total", sum(r["epochs"] for r in measured))
cols[2].metric("Energy", f"{sum(r['energy_kwh'] for r in measured):.3g} kWh")
cols[3].metric("CO2e", f"{sum(r['co2_kg'] for r in measured) * 1000:.3g} g")
methods = sorted({r["energy_method"] for r in measured if r["energy_method"]})
intensity_doc = doc["intensity"]
st.caption(
    f"Energy: {'; '.join(methods) or '—'}. Carbon intensity {intensity_doc['g_per_kwh']:.0f} g "
    f"CO2e/kWh ({intensity_doc['source']}), PUE {intensity_doc['pue']:g}. Predictions: "
    f"{int(doc['level'] * 100)}% intervals, made before retraining."
)
st.dataframe(_rows(runs), hide_index=True, key="val_results")

compare_tab, corr_tab, cal_tab, curve_tab = st.tabs(
    ["Predicted vs measured", "Correlation", "Calibration", "Training curves"]
)
with compare_tab:
    measure = st.radio(
        "Measure",
        ["epochs", "energy_kwh", "co2_kg"],
        format_func=_MEASURE_TITLES.get,
        horizontal=True,
        key="val_measure",
    )
    st.plotly_chart(_predicted_vs_measured(runs, measure), key="val_chart_compare")
with corr_tab:
    st.caption(
        "RESQUE against each measure, per kind (the two RESQUE scales differ). Needs 3+ finished "
        "runs with varying values."
    )
    st.dataframe(_correlation_rows(doc["correlation"]), hide_index=True, key="val_correlation")
with cal_tab:
    recal = st.session_state.setdefault(_RECAL, {})
    if st.button(
        "Recalibrate from all stored validations",
        key="val_recalibrate",
        icon=":material/refresh:",
        help="Refit RESQUE → epochs on every stored validation of this checkpoint and procedure.",
    ):
        with user_errors("Could not recalibrate") as box:
            fitted = recalibrate(
                cached.run_store(), doc["calibration_key"], cache_dir=cached.cache_dir()
            )
            recal[doc["calibration_key"]] = {k: c.to_dict() for k, c in fitted.items()}
        if not box.failed:
            st.success("Calibrations refitted and stored.", icon=":material/check_circle:")
    st.dataframe(
        _calibration_rows(recal.get(doc["calibration_key"], doc["calibration"])),
        hide_index=True,
        key="val_calibration",
    )
    st.caption(
        "Runs cut short by max epochs or the time budget are left out of the fit: their epoch "
        "counts are only lower bounds. A kind with fewer than 3 usable runs keeps its prior."
    )
with curve_tab:
    curves = {
        labels.get(r["candidate_id"], r["candidate_id"]): [
            e["held_accuracy"] for e in r["retrain"]["records"]
        ]
        for r in measured
        if r.get("retrain") and r["retrain"]["records"]
    }
    if curves:
        fig = go.Figure(
            [go.Scatter(x=list(range(1, len(v) + 1)), y=v, name=k) for k, v in curves.items()]
        )
        fig.add_hline(y=doc["retrain_config"]["target_accuracy"], line_dash="dot")
        fig.update_layout(
            template="plotly_white",
            xaxis_title="epoch",
            yaxis_title="held-out accuracy",
            height=380,
            margin={"l": 10, "r": 10, "t": 30, "b": 10},
        )
        st.plotly_chart(fig, key="val_chart_curves")
    else:
        st.info("No candidate needed a training epoch.", icon=":material/info:")
st.download_button(
    "Download the validation (JSON)",
    data=json.dumps(doc, indent=1, default=str),
    file_name=f"validation-{doc.get('run_id') or plan_key}.json",
    mime="application/json",
    key="val_download",
    icon=":material/download:",
)
