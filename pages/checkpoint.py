"""Checkpoint: the model to reuse, how to build and feed it, and the layer RESQUE reads."""

import streamlit as st

from resque_core import ModelConfig, check_model_inputs
from resque_core.data import parse_floats, parse_image_size
from resque_core.model import available_archs, default_layer
from resque_core.scoring import HELD_OUT_FRACTION
from ui import cached, state, views
from ui.feedback import user_errors

st.title("Checkpoint")
st.caption(
    "The trained PyTorch model you want to reuse. Nothing is downloaded: the weights come from "
    "your file."
)

plan = state.current_plan()
model = plan.resolved_model()


# How messages name the settings: by their labels on this page.
_FIELD_WORDS = {
    "image_size": "Image size",
    "mean": "Normalisation mean",
    "std": "Normalisation std",
}


def _init(key: str, value: object) -> None:
    # Widgets start from the current plan; afterwards they keep what the user typed.
    if key not in st.session_state:
        st.session_state[key] = value


def _joined(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


# An empty checkpoint stays empty (resolving it would give the plan's folder). An uploaded one is
# shown by its name, never by where the server keeps it.
uploaded = bool(plan.model.checkpoint) and state.display(model.checkpoint) != model.checkpoint
_init("ckpt_how", "Path on the server" if plan.model.checkpoint and not uploaded else "Upload")
_init("ckpt_path", model.checkpoint if plan.model.checkpoint and not uploaded else "")
_init("ckpt_arch", model.arch or "")
_init("ckpt_num_classes", model.num_classes)
_init("ckpt_in_channels", model.in_channels)
_init("ckpt_image_size", "x".join(map(str, model.image_size)) if model.image_size else "")
_init("ckpt_mean", _joined(model.mean))
_init("ckpt_std", _joined(model.std))
# Off for every newly opened plan (ui/state.py clears it): trust is given here, by the user.
_init("ckpt_trusted", state.trusted())

# ------------------------------------------------------------------ choose
with st.container(border=True):
    st.subheader("1 · The file")
    how = st.radio(
        "Where is the checkpoint?",
        ("Upload", "Path on the server"),
        key="ckpt_how",
        horizontal=True,
    )
    if how == "Upload":
        upload = st.file_uploader(
            "Checkpoint file",
            key="ckpt_upload",
            help="A state_dict (.pt/.pth; also nested under state_dict/model), a TorchScript "
            "archive or a torch.export program (.pt2). Kept for this session only.",
        )
        path = ""
        if upload is not None:
            with user_errors("Could not keep this upload") as up_box:
                path = str(state.save_upload(upload.name, upload.getvalue()))
        elif uploaded:
            path = model.checkpoint
            st.caption(f"Uploaded file in use: {views.md_text(state.display(path))}")
    else:
        roots = cached.settings().roots
        files = cached.root_entries("model")

        def _pick() -> None:
            st.session_state["ckpt_path"] = st.session_state["ckpt_pick"] or ""

        if files:
            st.selectbox(
                "Model files in the data roots",
                ["", *files],
                key="ckpt_pick",
                on_change=_pick,
                format_func=lambda f: f or "choose, or type a path below",
            )
        path = st.text_input(
            "Path on the server",
            key="ckpt_path",
            placeholder="/models/resnet18_cifar10.pt",
            help="Read by the machine that runs this app, only inside its data roots: "
            + (", ".join(map(str, roots)) or "none are set")
            + " (see Settings).",
        ).strip()

    st.subheader("2 · How to build and feed it")
    col_arch, col_classes, col_channels = st.columns(3)
    arch = col_arch.selectbox(
        "Architecture",
        ["", *available_archs()],
        key="ckpt_arch",
        format_func=lambda a: a or "none (TorchScript / torch.export file)",
        help="The network a state_dict belongs to: a torchvision model or one of the project's. "
        "Leave empty for TorchScript and torch.export files, which carry their network.",
    )
    num_classes = col_classes.number_input(
        "Classes",
        min_value=1,
        step=1,
        key="ckpt_num_classes",
        placeholder="read from the file",
        help="Outputs of the classifier. Leave empty to read it from the state_dict.",
    )
    in_channels = col_channels.number_input(
        "Input channels",
        min_value=1,
        max_value=64,
        step=1,
        key="ckpt_in_channels",
        help="1 for grey images, 3 for colour.",
    )
    col_size, col_mean, col_std = st.columns(3)
    image_size = col_size.text_input(
        "Image size",
        key="ckpt_image_size",
        placeholder="the source data's size",
        help="What the model was trained on: 32, or 32x28 (height x width). Empty: the source "
        "data's own size. Images are resized to it.",
    ).strip()
    mean = col_mean.text_input(
        "Normalisation mean",
        key="ckpt_mean",
        help="One value, or one per channel comma-separated, applied to pixels scaled to [0, 1]. "
        "The RESQUE reference uses 0.5.",
    )
    std = col_std.text_input(
        "Normalisation std", key="ckpt_std", help="One value, or one per channel."
    )
    trusted = st.toggle(
        "Trust this file",
        key="ckpt_trusted",
        help="Needed only for a pickled whole model. State dicts, TorchScript and torch.export "
        "files load safely without it.",
    )
    if trusted:
        st.warning(
            "Loading runs code from the file: only for files you trust.", icon=":material/shield:"
        )

    if st.button(
        "Use this checkpoint",
        key="ckpt_apply",
        type="primary",
        icon=":material/check:",
        disabled=not path,
    ):
        with user_errors("Could not use this checkpoint") as box:
            # Before anything reads the file: only inside the data roots or the user's uploads.
            state.allowed_path(path)
            new_model = ModelConfig(
                checkpoint=path,
                arch=arch or None,
                num_classes=int(num_classes) if num_classes else None,
                in_channels=int(in_channels),
                trusted=trusted,
                image_size=parse_image_size(image_size, name="Image size") if image_size else None,
                mean=parse_floats(mean, name="Normalisation mean"),
                std=parse_floats(std, name="Normalisation std", positive=True),
            )
            # Before the file is read: the settings alone must make sense for a model input.
            check_model_inputs(new_model, plan.run.batch_size, names=_FIELD_WORDS)
            device = cached.device_name(plan.run)
            ckpt = cached.checkpoint(new_model, device)
            # Listing the layers runs the model once on inputs of the chosen size: a size the
            # network cannot take is reported here, not in the middle of a ranking.
            cached.layers(ckpt, device, cached.input_size(plan, new_model, ckpt.arch))
            doc = state.plan_doc()
            if doc["model"].get("checkpoint") != path or doc["model"].get("arch") != new_model.arch:
                doc["layer"] = None
            doc["model"] = {
                "checkpoint": path,
                "arch": new_model.arch,
                # What the file says when the field was left empty: the plan stays explicit.
                "num_classes": new_model.num_classes or ckpt.num_classes,
                "in_channels": new_model.in_channels,
                "image_size": list(new_model.image_size) if new_model.image_size else None,
                "mean": list(new_model.mean),
                "std": list(new_model.std),
            }
            state.set_plan(doc)
            # Trust belongs to the session and to this checkpoint, never to the plan.
            state.set_trusted(trusted)
            st.session_state.pop("ckpt_layer", None)
        if not box.failed:
            st.success(
                "This checkpoint is now the model of the comparison.", icon=":material/check:"
            )

# ------------------------------------------------------------------ summary
plan = state.current_plan()
if not plan.model.checkpoint:
    st.info(
        "Upload a checkpoint or give its path, then press “Use this checkpoint”.",
        icon=":material/info:",
    )
    st.stop()

model = plan.resolved_model()
with user_errors("Could not load the comparison's checkpoint") as box:
    device = cached.device_name(plan.run)
    ckpt = cached.checkpoint(model, device)
    size = cached.input_size(plan, model, ckpt.arch)
    layers = cached.layers(ckpt, device, size)
if box.failed:
    st.stop()

with st.container(border=True):
    st.subheader("3 · Summary")
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{ckpt.n_parameters:,}")
    cols[1].metric("Format", ckpt.format)
    cols[2].metric("SHA-256", ckpt.sha256[:12], help=f"Content hash of the file: {ckpt.sha256}")
    accuracy_help = (
        f"Top-1 accuracy on a seeded, stratified {HELD_OUT_FRACTION:.0%} held-out part of the "
        "source data (the split the demo model was trained without). For your own model this "
        "part may overlap its training data."
    )
    if plan.source:
        with (
            st.spinner("Measuring accuracy on held-out source data…"),
            user_errors("Could not measure the source accuracy") as acc_box,
        ):
            value, n = cached.source_accuracy(plan)
        cols[3].metric(
            "Source accuracy",
            "—" if acc_box.failed else f"{value:.1%}",
            None if acc_box.failed else f"{n:,} held-out images",
            delta_color="off",
            delta_arrow="off",
            help=accuracy_help,
        )
    else:
        cols[3].metric("Source accuracy", "—", help="Set the source data on the Candidates page.")
    st.caption(
        f"Architecture **{ckpt.arch or 'from the file'}** · {ckpt.num_classes} classes · "
        f"{ckpt.in_channels} input channel{'s' if ckpt.in_channels != 1 else ''} · "
        f"input {size[0]}×{size[1]} · device {device}"
    )

# ------------------------------------------------------------------ layer
with st.container(border=True):
    st.subheader("4 · The layer RESQUE reads")
    defaults = {kind: default_layer(layers, kind) for kind in ("dist", "task")}
    by_name = {info.name: info for info in layers}

    def _describe(name: str) -> str:
        if not name:
            if defaults["dist"] == defaults["task"]:
                return f"Default: {defaults['dist']}"
            return f"Default — shifts: {defaults['dist']}, tasks: {defaults['task']}"
        info = by_name[name]
        return f"{name} · {info.type} · {'×'.join(map(str, info.out_shape))}"

    def _set_layer() -> None:
        doc = state.plan_doc()
        doc["layer"] = st.session_state["ckpt_layer"] or None
        state.set_plan(doc)

    _init("ckpt_layer", plan.layer if plan.layer in by_name else "")
    st.selectbox(
        "Layer",
        ["", *by_name],
        key="ckpt_layer",
        format_func=_describe,
        on_change=_set_layer,
        help="RESQUE compares the outputs of one layer. Default: the last convolution (as in "
        "the paper's code), for transformers the last token sequence, for MLPs the embedding "
        "before the classifier.",
    )
    st.dataframe(
        [
            {
                "layer": info.name,
                "type": info.type,
                "output shape": "×".join(map(str, info.out_shape)),
                "default for": ", ".join(
                    {"dist": "shifts", "task": "tasks"}[k]
                    for k, v in defaults.items()
                    if v == info.name
                ),
            }
            for info in layers
        ],
        hide_index=True,
        key="ckpt_layers_table",
    )
