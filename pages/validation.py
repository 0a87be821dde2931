"""Validation: retrain candidates for real, compare with the predictions, recalibrate."""

import streamlit as st

from resque_core import ValidationJob, suggest_candidates
from resque_core.cost import CostSettings, calibration_key, load_calibrations
from resque_core.measure import carbon_intensity, make_meter
from resque_core.retrain import AUGMENTATIONS, RetrainConfig
from ui import cached, jobs, state, views, widgets
from ui.feedback import user_errors

POLL_SECONDS = 0.5
_JOBS = "val_jobs"

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
        help="project: flip, rotation, scale and shift, brightness and contrast. no_flip: the "
        "same without the flip (mirrored digits or letters are other symbols). reference / "
        "reference_task: the reference code's noise / task transforms (rotation, affine with "
        "shear, colour jitter). none: no augmentation.",
    )
    max_epochs = left.number_input("Max epochs", 1, 250, 30, key="val_max_epochs")
    budget = left.number_input(
        "Time budget per candidate (s, 0 = none)", 0.0, 86400.0, 0.0, 10.0, key="val_time_budget"
    )
    meter_name, country, pue = widgets.energy_inputs("val", right, right, right)

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
    intensity = carbon_intensity(country=country, pue=pue)
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
            executor=state.executor(),
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
        fraction = min(1.0, (len(job.runs) + part) / n)
        current = labels.get(job.current, job.current or "scoring")
        head = f"Validation · candidate {min(job.index + 1, n)} of {n}: {current}"
        if job.cancelling:
            head = "Cancelling… (stops within one batch; measurements are kept)"
        elif job.stage:
            head += f" · {job.stage} {job.stage_done}/{job.stage_total} batches"
        left = jobs.remaining_seconds(job.elapsed, fraction) if job.runs or part else None
        st.progress(fraction, text=jobs.progress_line(head, job.elapsed, left))
        info, stop = st.columns([5, 1])
        info.caption(
            f"{len(job.runs)} of {n} retrained · the remaining time is extrapolated from the "
            "candidates done so far, and retraining stops when a candidate reaches its target"
        )
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
            st.dataframe(views.validation_rows(job.runs, labels), hide_index=True, width="stretch")

    panel()


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
            views.calibration_rows({k: c.to_dict() for k, c in stored.items()}),
            hide_index=True,
            key="val_calibration_before",
        )
    st.stop()
if job.error is not None:
    st.error(f"The validation stopped: {job.error}", icon="⚠️")
    st.stop()

# ----------------------------------------------------------------------------- results
views.validation_results(job.result, key_prefix="val", labels=labels, editable=True)
