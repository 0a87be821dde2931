"""Start: what RESQUE tells you, and the ranking of the current comparison (the demo at first)."""

import streamlit as st

from resque_core.report import charts
from ui import jobs, state, views

st.title("Which reuse of your model is cheapest?")
st.markdown(
    "You have a trained model and several ways to reuse it: **new tasks** (a new label space) "
    "or **shifted data** (noise, blur, a new camera). Retraining costs epochs, energy and CO₂. "
    "**RESQUE** estimates, before you spend them, how far each option is from what the model "
    "already knows, from forward passes only. **Lower = closer to what the model knows = "
    "cheaper reuse.** Shifts and tasks are measured on different scales, so each is ranked "
    "within its kind."
)

new_col, demo_col, _ = st.columns([3, 2, 3])
if new_col.button(
    "Start a new comparison with your own files",
    key="start_new",
    type="primary",
    icon=":material/upload_file:",
    help="Clears the current comparison (run settings are kept) and opens the Checkpoint page.",
    width="stretch",
):
    state.new_comparison()
    st.switch_page("pages/checkpoint.py")
if not state.is_demo():
    demo_col.button(
        "Back to the demo",
        key="start_demo",
        icon=":material/school:",
        on_click=state.load_demo,
        help="Replaces the current comparison by the shipped demo.",
        width="stretch",
    )

if (error := state.startup_error()) is not None:
    st.error(error, icon="⚠️")

plan = state.current_plan()
st.subheader(views.md_text(plan.name))
if state.is_demo():
    st.caption(
        "Demo: a small CNN trained on scikit-learn's handwritten digits (8×8, grey), compared "
        "with synthetic corruptions of those digits at five severities and with new tasks."
    )

ranking = jobs.ranking_view(plan, key_prefix="start")
if ranking is None:
    st.stop()

scored = [c for c in ranking["candidates"] if c["status"] == "ok"]
best = {kind: next((c for c in scored if c["kind"] == kind), None) for kind in ("dist", "task")}
cached_all = bool(scored) and all(c["score"]["cached"] for c in scored)
cols = st.columns(4)
cols[0].metric(
    "Candidates ranked",
    f"{len(scored)} / {len(plan.candidates)}",
    help="Failed candidates are listed with their reason on the Ranking page.",
)
for col, kind, title in ((cols[1], "dist", "Closest shift"), (cols[2], "task", "Closest task")):
    c = best[kind]
    with col.container(border=True, height="stretch"):
        # A metric's value is cut off at the column's width; a long name wraps here instead.
        st.caption(title, help="Rank 1 of its kind: the cheapest to reuse the model for.")
        st.markdown(f"**{views.md_text(c['label'])}**" if c else "—")
        if c:
            st.caption(f"RESQUE {c['resque']:.3f}")
cols[3].metric(
    "Computed in",
    "from cache" if cached_all else f"{ranking['seconds']:.1f} s",
    help="Results are cached on disk by content, so a repeated ranking is instant.",
)

st.plotly_chart(charts.ranking_bars(ranking["candidates"]), key="start_chart")
st.page_link(
    "pages/ranking.py",
    label="Table, severity curves, per-class breakdown, layer sweep and predicted cost",
    icon=":material/leaderboard:",
)
