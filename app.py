"""RESQUE reuse dashboard: the router. Run with

    streamlit run app.py --server.headless true --server.address 127.0.0.1 \
        --browser.gatherUsageStats false

Each step is one page in pages/; they reach the engine (resque_core) through ui/.

Every page has its own URL (``/history``, ``/ranking``, ...); the Start page is the default at
``/``. Two query parameters are understood on every page: ``?ws=ID`` opens a stored workspace
(the plan being edited and its uploads, see ui/state.py), and ``?run=ID`` opens a stored run on
the History page (``/?run=ID`` is sent there too).
"""

import logging
from pathlib import Path

import streamlit as st

from ui import state
from ui.widgets import plan_sidebar

ASSETS = Path(__file__).resolve().parent / "assets"
GLOSSARY = {
    "RESQUE_dist": "For a distribution shift (same classes): per class, the angle between the "
    "summed layer outputs of the source images and of the shifted images, divided by π, then "
    "averaged over the classes. 0 = the model sees no difference; lower means cheaper reuse.",
    "RESQUE_task": "For a new task (its own classes): 1 − ARI between the task's true labels and "
    "a k-means clustering of the model's layer outputs started at the class centroids. 0 = the "
    "features already separate the new classes.",
    "ARI": "Adjusted Rand index: agreement of two groupings of the same items, 1 for identical, "
    "about 0 for chance.",
    "PUE": "Power usage effectiveness: the data centre's total energy divided by the energy of "
    "its computers (1.0 = no overhead; typical 1.1 - 1.6). Energy is multiplied by it.",
    "calibration": "A fit, for this checkpoint and retraining procedure, from RESQUE to measured "
    "epochs, made from candidates you retrained on the Validation page; predictions for the "
    "others rest on it (without one, on a documented prior).",
    "probe": "A short timed training run of a few batches, metered, that gives the energy per "
    "epoch a prediction multiplies by the predicted number of epochs.",
}

st.set_page_config(
    page_title="RESQUE reuse dashboard",
    page_icon=str(ASSETS / "logo.svg"),
    layout="wide",
)
st.logo(str(ASSETS / "logo.svg"), size="large")
st.html(f"<style>{(ASSETS / 'style.css').read_text(encoding='utf-8')}</style>")

start = st.Page("pages/start.py", title="Start", icon=":material/home:", default=True)
history = st.Page("pages/history.py", title="History", icon=":material/history:")
navigation = st.navigation(
    {
        "Overview": [start, history],
        "Compare": [
            st.Page("pages/checkpoint.py", title="Checkpoint", icon=":material/memory:"),
            st.Page("pages/candidates.py", title="Candidates", icon=":material/playlist_add:"),
            st.Page("pages/ranking.py", title="Ranking", icon=":material/leaderboard:"),
            st.Page("pages/validation.py", title="Validation", icon=":material/model_training:"),
        ],
        "Setup": [
            st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
        ],
    }
)
# A shared link to a stored run opens the History page on it, whatever page it names.
if "run" in st.query_params and navigation.url_path != history.url_path:
    st.switch_page(history, query_params=st.query_params.to_dict())

plan_sidebar()
state.sync_url()
with st.sidebar.expander("Glossary", icon=":material/menu_book:"):
    for term, meaning in GLOSSARY.items():
        st.markdown(f"**{term}** — {meaning}")

try:
    navigation.run()
except Exception:  # noqa: BLE001 - a bug in a page: a short message, the details in the log
    logging.getLogger("resque.app").exception("page %s failed", navigation.title)
    st.error(
        "Something went wrong on this page (the details are in the server's log). Your "
        "comparison is kept: reload the page or open another one.",
        icon="⚠️",
    )
