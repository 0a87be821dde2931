"""The dashboard's shared layer between pages and the engine.

``state`` (the current plan and uploads, per browser session), ``cached`` (stores, checkpoints,
data sets and derived values shared through Streamlit's caches), ``jobs`` (rankings computed in a
background thread with progress and cancel), ``feedback`` (engine errors as st.error) and
``widgets`` (inputs used by several pages). Pages import these; the engine never imports them.
"""

import sys as _sys


def _route_through_the_app() -> None:
    """Make the first page a fresh server shows run inside app.py's router.

    Streamlit treats a ``pages/`` folder as the old multipage layout until ``st.navigation``
    has run once in the process, so the first browser to open a deep link (``/history?run=``,
    ``/candidates?ws=``) on a fresh server would get that page without the app's router (no
    workspace, glossary or sidebar of the app). The first page to import this package switches
    that layout off and reruns, so app.py routes it. Streamlit's AppTest runs pages directly and
    is left as it is.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - another Streamlit layout
        return
    if PagesManager.uses_pages_directory and "streamlit.testing.v1.app_test" not in _sys.modules:
        import streamlit as st

        PagesManager.uses_pages_directory = False
        st.rerun()


_route_through_the_app()
