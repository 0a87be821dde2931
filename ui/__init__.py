"""The dashboard's shared layer between pages and the engine.

``state`` (the current plan and uploads, per browser session), ``cached`` (stores, checkpoints,
data sets and derived values shared through Streamlit's caches), ``jobs`` (rankings computed in a
background thread with progress and cancel), ``feedback`` (engine errors as st.error) and
``widgets`` (inputs used by several pages). Pages import these; the engine never imports them.
"""
