"""Ranking: every candidate scored, in rank order, with charts and a layer sweep."""

import streamlit as st

from resque_core import ORDERINGS, CalibrationJob
from resque_core.cost import CostOptions, CostSettings
from resque_core.measure import carbon_intensity
from resque_core.report import charts
from resque_core.retrain import RetrainConfig
from ui import cached, jobs, state, views, widgets
from ui.feedback import user_errors

_ORDER_LABELS = {
    "resque": "RESQUE, within each kind",
    "epochs": "predicted epochs",
    "kwh": "predicted kWh",
    "co2": "predicted CO2e",
}

_CAL_JOBS = "rank_calibration_jobs"


def _calibrate_step(plan, ranking, cost) -> None:
    """Next to the predicted cost: what the predictions rest on (form, n, leave-one-out error,
    or "uncalibrated"), and a Calibrate step that retrains a few chosen candidates on this
    model, with progress and cancel; the next ranking predicts from the stored calibration."""
    info = ranking.get("cost") or {}
    basis = info.get("calibration") or {}
    if basis:
        st.caption(
            "Predicted figures rest on: "
            + "; ".join(f"**{widgets.KIND_LABELS.get(k, k)}**: {t}" for k, t in basis.items())
        )
    offer = info.get("calibration_offer") or {}
    if info.get("uncalibrated"):
        rough = (
            f" Calibrating would retrain {len(offer['candidates'])} candidates, roughly "
            f"{offer['estimated_seconds'] / 60:.1f} min ({offer['basis']})."
            if offer.get("candidates")
            else ""
        )
        st.info(
            "Uncalibrated on this model: no predicted cost is shown for "
            + ", ".join(widgets.KIND_LABELS.get(k, k) for k in info["uncalibrated"])
            + ", only RESQUE."
            + rough,
            icon=":material/tune:",
        )
    store = st.session_state.setdefault(_CAL_JOBS, {})
    key = state.plan_key()
    job = store.get(key)
    with st.expander(
        "Calibrate on this model", icon=":material/tune:", expanded=bool(info.get("uncalibrated"))
    ):
        st.caption(
            "Retrains a few candidates chosen to teach the cost model the most per unit of cost "
            "(spread over each kind's RESQUE range and over shift families, cheap ones first), "
            "fits the form with the lowest leave-one-out error and stores it for this "
            "checkpoint and retraining procedure."
        )
        c_k, c_min = st.columns(2)
        k = c_k.number_input("Candidates to retrain", 1, 20, 5, key="rank_cal_k")
        minutes = c_min.number_input(
            "Budget, minutes (0 = none)", min_value=0.0, value=0.0, key="rank_cal_minutes"
        )
        running = job is not None and job.running
        if st.button(
            "Calibrate",
            key="rank_cal_start",
            type="primary",
            icon=":material/model_training:",
            disabled=running,
        ):
            with user_errors("Could not start the calibration"):
                job = CalibrationJob(
                    plan,
                    k=int(k),
                    budget_seconds=float(minutes) * 60 or None,
                    config=cost.procedure,
                    settings=cost.settings,
                    meter=cost.meter,
                    store=cached.result_store(),
                    runs=cached.run_store(),
                    cache_dir=cached.cache_dir(),
                ).start()
                store[key] = job
        if job is None:
            return

        @st.fragment(run_every=0.5)
        def panel() -> None:
            if job.running:
                n = max(job.total, 1)
                head = f"Calibration · candidate {min(job.index + 1, n)} of {n}: {job.current}"
                if job.current is None:
                    head = f"Calibration · {job.stage or 'scoring and probing'}"
                if job.cancelling:
                    head = "Cancelling… (measurements are kept)"
                st.progress(min(1.0, len(job.runs) / n), text=head)
                st.button(
                    "Cancel",
                    key="rank_cal_cancel",
                    icon=":material/stop_circle:",
                    on_click=job.cancel,
                    disabled=job.cancelling,
                )
                return
            if job.error:
                st.error(job.error, icon=":material/error:")
            elif job.result:
                r = job.result
                st.success(
                    f"Retrained {', '.join(r['retrained']) or 'none'} in "
                    f"{r['measured'].get('seconds', 0):.0f} s "
                    f"({r['measured'].get('kwh', 0):.3g} kWh). "
                    + " ".join(
                        f"{widgets.KIND_LABELS.get(k, k)}: {t}." for k, t in r["basis"].items()
                    )
                    + " Rank again to predict from it.",
                    icon=":material/task_alt:",
                )

        panel()


st.title("Ranking")
st.caption(
    "Lower RESQUE = closer to what the model already knows = cheaper to reuse. Shifts "
    "(RESQUE_dist, an angle in [0, 1]) and tasks (RESQUE_task, 1 − adjusted Rand index) are on "
    "different scales, so each is ranked within its kind."
)

plan = state.current_plan()

# ----------------------------------------------------------------------------- cost model
with st.expander(
    "Predicted cost: epochs, kWh and CO2e",
    icon=":material/bolt:",
    expanded=bool(st.session_state.get("rank_cost_on")),
):
    st.caption(
        "Turns RESQUE into predicted retraining epochs (a calibration on measured retrainings, "
        "or a documented prior until the Validation page has measured some), energy per epoch "
        "from a short measured training probe on each candidate, and CO2e = kWh × carbon "
        "intensity × PUE, each with an interval that carries all three uncertainties."
    )
    estimate, n_probes = jobs.probe_estimate(
        plan, st.session_state.get("rank_meter", "auto"), cached.device_name(plan.run)
    )
    _probe_words = (
        f"Predicting costs first measures up to {n_probes} short energy probe"
        f"{'s' if n_probes != 1 else ''} (one per workload: all shifts share one, tasks "
        f"share one per head size), about {estimate:.0f} s on this machine; later rankings "
        "reuse them from the cache. A probe never trains longer than the cheapest retraining "
        "it predicts."
    )
    if estimate > 60 and not st.session_state.get("rank_cost_on"):
        st.warning(_probe_words, icon=":material/timer:")
    else:
        st.caption(_probe_words)
    cost_on = st.toggle("Predict retraining cost", key="rank_cost_on")
    c_order, c_meter, c_country, c_pue, c_kwh, c_co2 = st.columns([2, 1.5, 3, 1, 1.5, 1.5])
    ordered_by = c_order.selectbox(
        "Order by",
        list(ORDERINGS) if cost_on else ["resque"],
        format_func=lambda k: _ORDER_LABELS.get(k, k),
        key="rank_order_by",
        disabled=not cost_on,
    )
    meter_name, country, pue = widgets.energy_inputs(
        "rank", c_meter, c_country, c_pue, disabled=not cost_on
    )
    max_kwh = c_kwh.number_input(
        "kWh budget",
        help="Flag candidates predicted above it; 0 = no budget.",
        min_value=0.0,
        value=0.0,
        format="%g",
        key="rank_max_kwh",
        disabled=not cost_on,
    )
    max_g = c_co2.number_input(
        "g CO2e budget",
        help="Flag candidates predicted above it; 0 = no budget.",
        min_value=0.0,
        value=0.0,
        format="%g",
        key="rank_max_g_co2",
        disabled=not cost_on,
    )

cost = None
if cost_on:
    with user_errors("Check the cost settings") as box:
        cost = CostOptions(
            settings=CostSettings(carbon_intensity(country=country, pue=pue)),
            procedure=RetrainConfig(seed=plan.run.seed, device=cached.device_name(plan.run)),
            meter=meter_name,
            cache_dir=str(cached.cache_dir()),
            max_kwh=float(max_kwh) or None,
            max_co2_kg=float(max_g) / 1000 or None,
        )
    if box.failed:
        st.stop()

ranking = jobs.ranking_view(
    plan, key_prefix="rank", cost=cost, ordered_by=ordered_by if cost_on else "resque"
)
if ranking is None:
    st.stop()

candidates = ranking["candidates"]
scored = [c for c in candidates if c["status"] == "ok"]
views.ranking_metrics(ranking, len(plan.candidates))
over = [c for c in candidates if c.get("over_budget")]
if over:
    st.warning(
        "Predicted over budget: "
        + "; ".join(
            f"**{views.md_text(c['label'])}** ({', '.join(c['over_budget'])})" for c in over
        ),
        icon=":material/savings:",
    )
views.ranking_table(ranking, key="rank_table")
if cost is not None:
    _calibrate_step(plan, ranking, cost)

if ranking.get("run_id"):
    st.page_link(
        "pages/history.py",
        label=f"Stored as run {ranking['run_id']}: reopen it any time from History",
        icon=":material/history:",
        query_params={"run": ranking["run_id"]},
    )
with st.expander("Export this ranking", icon=":material/ios_share:"):
    views.report_downloads(ranking, key_prefix="rank")

charts_tab, sweep_tab = st.tabs(["Charts", "Layer sweep"])
with charts_tab:
    views.ranking_charts(ranking, key_prefix="rank")

with sweep_tab:
    if not scored:
        st.info("Rank at least one candidate first.", icon=":material/info:")
        st.stop()
    st.caption(
        "RESQUE of one candidate at several layers: where along the network the representation "
        "of the new data departs from what the model knows."
    )
    by_id = {c["id"]: c for c in scored}
    cid = st.selectbox(
        "Candidate",
        list(by_id),
        format_func=lambda i: f"{by_id[i]['label']} ({widgets.KIND_LABELS[by_id[i]['kind']]})",
        key="rank_sweep_candidate",
    )
    model = plan.resolved_model()
    with user_errors("Could not list the model's layers") as box:
        device = cached.device_name(plan.run)
        ckpt = cached.checkpoint(model, device)
        names = [
            info.name
            for info in cached.layers(ckpt, device, cached.input_size(plan, model, ckpt.arch))
        ]
    if box.failed:
        st.stop()
    # Up to six layers spread over the network, always including the one the ranking used.
    step = max(1, len(names) // 5)
    default = sorted(set(names[::step][:6]) | {by_id[cid]["score"]["layer"]}, key=names.index)
    chosen = st.multiselect("Layers", names, default=default, key="rank_sweep_layers")
    sweeps = st.session_state.setdefault("rank_sweeps", {})
    sweep_key = f"{state.plan_key()}:{cid}"
    if st.button(
        "Compute the sweep",
        key="rank_sweep_run",
        type="primary",
        icon=":material/timeline:",
        disabled=not chosen,
    ):
        ordered = sorted(chosen, key=names.index)
        bar = st.progress(0.0, text="Starting…")

        def _on_layer(i: int, n: int, layer: str) -> None:
            bar.progress(i / n, text=f"Layer {i + 1} of {n}: {layer}")

        with user_errors("The sweep stopped") as box:
            sweeps[sweep_key] = jobs.layer_sweep(plan, cid, ordered, on_layer=_on_layer)
        bar.empty()
    points = sweeps.get(sweep_key)
    if points:
        st.plotly_chart(
            charts.layer_sweep(
                [(layer, value) for layer, value, _ in points], title=by_id[cid]["label"]
            ),
            key="rank_chart_sweep",
        )
        for layer, _, error in points:
            if error:
                st.warning(f"Layer {layer}: {error}", icon=":material/error:")
