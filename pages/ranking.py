"""Ranking: every candidate scored, in rank order, with charts and a layer sweep."""

import json

import streamlit as st

from resque_core import charts
from ui import cached, jobs, state, widgets
from ui.feedback import user_errors

st.title("Ranking")
st.caption(
    "Lower RESQUE = closer to what the model already knows = cheaper to reuse. Shifts "
    "(RESQUE_dist, an angle in [0, 1]) and tasks (RESQUE_task, 1 − adjusted Rand index) are on "
    "different scales, so each is ranked within its kind."
)

plan = state.current_plan()
ranking = jobs.ranking_view(plan, key_prefix="rank")
if ranking is None:
    st.stop()

candidates = ranking["candidates"]
scored = [c for c in candidates if c["status"] == "ok"]
failed = [c for c in candidates if c["status"] != "ok"]

cols = st.columns(4)
cols[0].metric("Ranked", f"{len(scored)} / {len(plan.candidates)}")
cols[1].metric("Failed", len(failed), help="Candidates that could not be scored; see below.")
cols[2].metric(
    "Compute time",
    f"{sum(c['score']['compute_seconds'] for c in scored):.1f} s",
    help="Time the values took to compute when they were first computed.",
)
cols[3].metric(
    "From cache",
    f"{sum(c['score']['cached'] for c in scored)} / {len(scored)}",
    help="Results are cached on disk by content; a repeated ranking is instant.",
)

if failed and not scored:
    st.error(f"No candidate could be scored. First reason: {failed[0]['error']}", icon="⚠️")
elif failed:
    st.warning(
        "Not scored: " + "; ".join(f"**{c['label']}** — {c['error']}" for c in failed),
        icon=":material/error:",
    )

st.dataframe(
    widgets.ranking_rows(candidates),
    hide_index=True,
    key="rank_table",
    column_config={
        "rank": st.column_config.NumberColumn("rank", help="Rank within its kind (1 = cheapest)"),
        "RESQUE": st.column_config.NumberColumn("RESQUE", format="%.4f"),
        "seconds": st.column_config.NumberColumn("seconds", format="%.2f"),
        "images": st.column_config.NumberColumn("images", help="Images of the candidate read"),
    },
)
st.download_button(
    "Download the ranking (JSON)",
    data=json.dumps(ranking, indent=1, default=str),
    file_name=f"ranking-{ranking.get('run_id') or state.plan_key()}.json",
    mime="application/json",
    key="rank_download",
    icon=":material/download:",
)

bars_tab, severity_tab, class_tab, sweep_tab = st.tabs(
    ["Ranking", "RESQUE vs severity", "Per class", "Layer sweep"]
)
with bars_tab:
    st.plotly_chart(charts.ranking_bars(candidates), key="rank_chart_bars")
with severity_tab:
    st.plotly_chart(charts.severity_lines(candidates), key="rank_chart_severity")
    st.caption("A steeper curve means the model's representation drifts faster with severity.")
with class_tab:
    kind = st.radio(
        "Kind",
        ["dist", "task"],
        format_func=lambda k: charts.KIND_TITLES[k],
        key="rank_heatmap_kind",
        horizontal=True,
    )
    st.plotly_chart(charts.class_heatmap(candidates, kind=kind), key="rank_chart_classes")
    st.caption(
        "Shifts: the angle of each class between source and shifted data. Tasks: each class's "
        "contribution to 1 − ARI. Classes far above the rest are where reuse will cost most."
    )

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
