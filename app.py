"""RESQUE reuse dashboard: the router. Run with

    streamlit run app.py --server.headless true --server.address 127.0.0.1 \
        --browser.gatherUsageStats false

Each step is one page in pages/; they reach the engine (resque_core) through ui/.
"""

from pathlib import Path

import streamlit as st

from ui.widgets import plan_sidebar

ASSETS = Path(__file__).resolve().parent / "assets"

st.set_page_config(
    page_title="RESQUE reuse dashboard",
    page_icon=str(ASSETS / "logo.svg"),
    layout="wide",
)
st.logo(str(ASSETS / "logo.svg"), size="large")
st.html(f"<style>{(ASSETS / 'style.css').read_text(encoding='utf-8')}</style>")

# A shared link to a stored run (?run=ID) opens the History page on it.
linked_run = "run" in st.query_params
navigation = st.navigation(
    {
        "Overview": [
            st.Page(
                "pages/start.py", title="Start", icon=":material/home:", default=not linked_run
            ),
            st.Page(
                "pages/history.py",
                title="History",
                icon=":material/history:",
                default=linked_run,
            ),
        ],
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
plan_sidebar()
navigation.run()
