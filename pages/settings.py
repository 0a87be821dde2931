"""Settings: where RESQUE runs (device, executor), the result cache, and sampling defaults of
the comparison."""

from pathlib import Path

import streamlit as st

from ui import cached, hardware, state
from ui.feedback import user_errors

st.title("Settings")

# ------------------------------------------------------------------ device
with st.container(border=True):
    st.subheader("Device")
    doc = state.plan_doc()
    run = dict(doc.get("run", {}))
    found = hardware.gpus()
    devices = ["auto", "cpu", "cuda", *(f"cuda:{g.index}" for g in found or [])]
    current = run.get("device", "auto")
    if current not in devices:
        devices.append(current)
    st.selectbox(
        "Compute on",
        devices,
        index=devices.index(current),
        key="set_device",
        help="auto: the first CUDA GPU if there is one, else the CPU. Results are identical "
        "up to floating-point rounding; the cache keeps CPU and GPU results apart.",
    )
    if found is None:
        st.info("No NVIDIA GPU/driver found: running on CPU.", icon=":material/memory:")
    elif not found:
        st.info("The NVIDIA driver reports no GPU: running on CPU.", icon=":material/memory:")
    else:

        @st.fragment(run_every=2.0)
        def gpu_table() -> None:
            rows = [
                {
                    "GPU": f"{g.index}: {g.name}",
                    "memory used (GiB)": round(g.memory_used_bytes / 2**30, 2),
                    "memory total (GiB)": round(g.memory_total_bytes / 2**30, 2),
                    "power now (W)": g.power_watts,
                    "power limit (W)": g.power_limit_watts,
                }
                for g in hardware.gpus() or []
            ]
            st.dataframe(rows, hide_index=True, key="set_gpus")
            st.caption("Live from NVML, refreshed every 2 s.")

        gpu_table()

# ------------------------------------------------------------------ executor
with st.container(border=True):
    st.subheader("Where jobs run")
    chosen, address = state.executor_choice()
    names = ["local", "ray"]
    st.radio(
        "Executor",
        names,
        index=names.index(chosen),
        key="set_executor",
        horizontal=True,
        help="local: this app's process, one candidate after another. ray: rankings and "
        "validation retrains fan out over Ray workers, one whole GPU (or one CPU) each; the "
        "cache is written here only. See docs/SCALING.md.",
    )
    st.text_input(
        "Ray address",
        value=address or "",
        key="set_ray_address",
        placeholder="empty: a local Ray on this machine; auto: the running cluster",
        disabled=st.session_state["set_executor"] != "ray",
        help="auto, or HOST:PORT of the cluster's head. Plan, checkpoint and data paths must "
        "be readable on every node.",
    )
    if st.button("Use this executor", key="set_executor_save", icon=":material/hub:"):
        with user_errors("Could not use this executor") as box, st.spinner("Connecting…"):
            where = state.set_executor(
                st.session_state["set_executor"], st.session_state["set_ray_address"]
            )
        if not box.failed:
            st.success(f"This session's jobs run on {where}.", icon=":material/check:")

# ------------------------------------------------------------------ sampling
with st.container(border=True):
    st.subheader("Sampling")
    st.caption(
        "These settings belong to the current comparison: they change which images are read, so "
        "results computed with other settings stay in the cache under their own key."
    )
    col_spc, col_batch, col_seed, col_task = st.columns(4)
    all_samples = col_spc.toggle(
        "All images",
        value=run.get("samples_per_class") is None,
        key="set_all_samples",
        help="Read every image of each data set instead of a cap per class.",
    )
    samples = col_spc.number_input(
        "Samples per class",
        min_value=1,
        value=run.get("samples_per_class") or 100,
        step=10,
        key="set_samples_per_class",
        disabled=all_samples,
        help="Images read per class of every data set (seeded, stratified).",
    )
    batch = col_batch.number_input(
        "Batch size",
        min_value=1,
        value=run.get("batch_size", 128),
        step=32,
        key="set_batch_size",
        help="Images per forward pass; lower it if the device runs out of memory.",
    )
    seed = col_seed.number_input(
        "Seed",
        min_value=0,
        value=run.get("seed", 0),
        step=1,
        key="set_seed",
        help="Seeds sampling, synthetic noise and k-means: equal seeds give equal results.",
    )
    max_task = col_task.number_input(
        "Max images per task",
        min_value=2,
        value=run.get("max_task_samples") or 5000,
        step=500,
        key="set_max_task_samples",
        help="A new task's data is capped to this many images (stratified) for k-means.",
    )
    reference_mode = st.toggle(
        "Reproduce the reference code (compat mode)",
        value=run.get("compat") == "reference",
        key="set_compat_reference",
        help="Off (default): the project's corrected pipeline. On: the RESQUE reference code's, "
        "to set results beside the paper's: Gaussian noise wraps around in 8 bits, "
        "salt-and-pepper hits whole pixels, scipy's 4-sigma blur, 8-bit rounding after every "
        "corruption, token layers averaged over features, every task image (the cap above is "
        "not applied). Values differ between modes; see docs/METHOD.md.",
    )
    flatten = st.toggle(
        "Also the flattened RESQUE_task variants",
        value=bool(run.get("flatten", False)),
        key="set_flatten",
        help="Off (default): RESQUE_task clusters the layer's pooled embeddings (centroid and "
        "k-means++ starts). On: also every activation value of the layer, unpooled, as the "
        "reference reports; slow and memory-heavy on early layers. The headline value is the "
        "same either way.",
    )
    if st.button("Save settings", key="set_save", type="primary", icon=":material/save:"):
        run.pop("compat", None)  # the default mode is written as no field at all
        if reference_mode:
            run["compat"] = "reference"
        run.update(
            device=st.session_state["set_device"],
            samples_per_class=None if all_samples else int(samples),
            batch_size=int(batch),
            seed=int(seed),
            max_task_samples=int(max_task),
            flatten=bool(flatten),
        )
        with user_errors("Could not save the settings") as box:
            doc["run"] = run
            state.set_plan(doc)
        if not box.failed:
            st.success("Saved: the next ranking uses these settings.", icon=":material/check:")


# ------------------------------------------------------------------ cache
def _clear_cache() -> None:
    with user_errors("Could not clear the cache"):
        st.session_state["set_cleared"] = cached.result_store().clear()


with st.container(border=True):
    st.subheader("Result cache")
    with user_errors("The cache cannot be used") as box:
        store, runs = cached.result_store(), cached.run_store()
    if not box.failed:
        cols = st.columns(3)
        cols[0].metric("Size", f"{store.size_bytes() / 2**20:.1f} MiB")
        cols[1].metric("Entries", f"{len(store):,}")
        cols[2].metric(
            "Stored runs",
            f"{len(runs.list()):,}",
            help="Rankings and validations, listed on the History page.",
        )
        st.caption(
            f"Location: `{cached.cache_dir()}` (set `RESQUE_CACHE_DIR` before starting the app to "
            "move it). Results are keyed by content: checkpoint and data hashes, preprocessing, "
            "shift, layer, seed and sampling."
        )
        st.button(
            "Clear the cache",
            key="set_clear_cache",
            icon=":material/delete:",
            on_click=_clear_cache,
            help="Removes every cached result; rankings are then computed again. Stored "
            "runs (rankings and validations on the History page) are kept.",
        )
        if (removed := st.session_state.pop("set_cleared", None)) is not None:
            st.success(f"Removed {removed:,} cached entries.", icon=":material/check:")


# ------------------------------------------------------------------ server: data roots, uploads
def _loopback_only() -> bool:
    """Whether only this machine can reach the server (it binds a loopback address), so the
    person in the browser is the person who started it."""
    address = st.get_option("server.address") or ""
    return address in ("127.0.0.1", "localhost", "::1")


def _save_server_settings() -> None:
    from dataclasses import replace

    with user_errors("Could not save the server settings") as box:
        current = cached.settings()
        lines = st.session_state["set_roots"].splitlines()
        roots = tuple(Path(line.strip()).expanduser() for line in lines if line.strip())
        replace(
            current,
            roots=roots,
            max_upload_bytes=int(st.session_state["set_max_upload_mb"]) * 2**20,
            max_uploads_bytes=int(st.session_state["set_max_uploads_mb"]) * 2**20,
        ).to_file(cached.cache_dir())
    if not box.failed:
        st.session_state["set_server_saved"] = True


with st.container(border=True):
    st.subheader("Server files and uploads")
    st.caption(
        "These settings belong to this server, not to a comparison. Paths typed into the "
        "dashboard are read only inside the data roots (symlinks are followed before the "
        "check); anything else is refused as “not an allowed location”. The command line "
        "keeps full access to your files."
    )
    with user_errors("The server settings cannot be read") as box:
        server = cached.settings()
        used = cached.workspaces().upload_bytes()
    if not box.failed:
        st.dataframe(
            [
                {
                    "data root": str(root),
                    "exists": root.is_dir(),
                    "data sets and model files": len(
                        [e for e in cached.root_entries("data") if e.startswith(str(root) + "/")]
                    )
                    + len(
                        [e for e in cached.root_entries("model") if e.startswith(str(root) + "/")]
                    ),
                }
                for root in server.roots
            ],
            hide_index=True,
            key="set_roots_table",
        )
        st.caption(f"Data roots from {server.source}.")
        cols = st.columns(3)
        cols[0].metric("Uploads on this server", f"{used / 2**20:,.1f} MB")
        cols[1].metric("Cap per upload", f"{server.max_upload_bytes / 2**20:,.0f} MB")
        cols[2].metric("Cap for all uploads", f"{server.max_uploads_bytes / 2**20:,.0f} MB")
        if server.fixed:
            st.info(
                "The data roots are fixed by RESQUE_DATA_ROOTS when the server starts.",
                icon=":material/lock:",
            )
        elif not _loopback_only():
            # A server others can reach: widening what it may read is for whoever starts it.
            st.info(
                "This server listens beyond this machine, so its data roots and caps are set "
                "where it starts: RESQUE_DATA_ROOTS (folders separated by ':') or the "
                "server.json file in the cache folder.",
                icon=":material/lock:",
            )
        else:
            with st.expander("Change the data roots and upload caps", icon=":material/tune:"):
                st.session_state.setdefault("set_roots", "\n".join(map(str, server.roots)))
                st.text_area(
                    "Data roots (one folder per line)",
                    key="set_roots",
                    help="Folders whose files and sub-folders the dashboard may read. Empty: "
                    "only uploads and the built-in data sets.",
                )
                col_one, col_all = st.columns(2)
                col_one.number_input(
                    "Cap per upload (MB)",
                    min_value=1,
                    value=server.max_upload_bytes // 2**20,
                    key="set_max_upload_mb",
                )
                col_all.number_input(
                    "Cap for all uploads of this server (MB)",
                    min_value=1,
                    value=server.max_uploads_bytes // 2**20,
                    key="set_max_uploads_mb",
                    help="Uploads are kept with their workspace; delete workspaces on the "
                    "History page to free space.",
                )
                st.button(
                    "Save server settings",
                    key="set_server_save",
                    icon=":material/save:",
                    on_click=_save_server_settings,
                )
        if st.session_state.pop("set_server_saved", None):
            st.success("Saved: the new roots and caps apply now.", icon=":material/check:")
