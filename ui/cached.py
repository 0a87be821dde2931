"""Engine objects shared through Streamlit's caches (the only place pages get them from).

``st.cache_resource`` holds what is expensive to build and safe to share read-only between
sessions: the result and run stores (one per cache folder), loaded checkpoints (keyed by content
hash, architecture, classes, channels, trust and device) and loaded data sets (keyed by their
content fingerprint). Never mutate what these functions return: the engine reads layers through
hooks that fire only for the calling thread and are removed after use. ``st.cache_data`` keeps
small derived values (layer lists, preview images). Values that took real compute (source
accuracy) go to the engine's disk cache, under the engine's keys; this module only wraps engine
calls and keeps no keys of its own.

Every function raises :class:`~resque_core.errors.ResqueError` for bad input; pages show it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from resque_core import (
    DEMO_PLAN,
    ConfigError,
    ModelConfig,
    Plan,
    ResultStore,
    RunConfig,
    RunStore,
    Scorer,
)
from resque_core.data import ImageSet, Preprocess, class_overlap, data_fingerprint, load_data
from resque_core.data import shift_preview as _shift_preview
from resque_core.model import LayerInfo, LoadedCheckpoint, list_layers
from resque_core.scoring import default_image_size, resolve_device
from resque_core.scoring import source_accuracy as _source_accuracy
from resque_core.store import (
    ServerSettings,
    WorkspaceStore,
    confine,
    confine_spec,
    data_entries,
    default_cache_dir,
    server_settings,
)

__all__ = [
    "allowed_path",
    "allowed_spec",
    "cache_dir",
    "checkpoint",
    "data_summary",
    "dataset",
    "expire_workspaces",
    "forget_uploads",
    "device_name",
    "input_size",
    "layers",
    "result_store",
    "root_entries",
    "run_store",
    "settings",
    "shift_preview",
    "source_accuracy",
    "workspaces",
]


def cache_dir() -> str:
    """The cache folder: ``$RESQUE_CACHE_DIR`` if set, else ``~/.cache/resque``."""
    return str(default_cache_dir())


@st.cache_resource(show_spinner=False)
def _result_store(directory: str) -> ResultStore:
    return ResultStore(directory)


@st.cache_resource(show_spinner=False)
def _run_store(directory: str) -> RunStore:
    return RunStore(directory)


def _open(factory, directory: str):
    try:
        return factory(directory)
    except OSError as e:
        raise ConfigError(
            f"cannot open the cache folder {directory}: {e.strerror or e}; "
            "set RESQUE_CACHE_DIR to a writable folder"
        ) from None


def result_store() -> ResultStore:
    """The result cache of :func:`cache_dir`, opened once per folder and process."""
    return _open(_result_store, cache_dir())


def run_store() -> RunStore:
    """The stored runs of :func:`cache_dir`."""
    return _open(_run_store, cache_dir())


def settings() -> ServerSettings:
    """The server's data roots and upload caps (read on every call: a change applies at once).
    The default root, ``<cache dir>/data``, is created so that it can be filled."""
    found = server_settings(cache_dir())
    if not found.fixed and found.source.startswith("the default"):
        # An unwritable cache folder is reported by the stores.
        with contextlib.suppress(OSError):
            found.roots[0].mkdir(parents=True, exist_ok=True)
    return found


def workspaces() -> WorkspaceStore:
    """The workspaces of :func:`cache_dir`, with the server's upload caps."""
    found = settings()
    return WorkspaceStore(
        cache_dir(),
        max_upload_bytes=found.max_upload_bytes,
        max_total_bytes=found.max_uploads_bytes,
    )


_EXPIRED_AT: list[float] = [0.0]


def expire_workspaces() -> None:
    """Delete workspaces untouched for ``$RESQUE_WORKSPACE_DAYS`` days (default 30), at most
    once an hour per server process."""
    import os
    import time

    if time.monotonic() - _EXPIRED_AT[0] < 3600 and _EXPIRED_AT[0]:
        return
    _EXPIRED_AT[0] = time.monotonic()
    try:
        days = float(os.environ.get("RESQUE_WORKSPACE_DAYS", "30"))
        for ws_id in workspaces().expire(days):
            forget_uploads(str(workspaces().directory / ws_id))
    except (OSError, ValueError):
        pass  # a cache folder that cannot be read is reported where it is used


def _roots(extra: tuple[str, ...]) -> list[Path]:
    # The shipped demo files are always readable; so are the caller's own uploads (``extra``).
    return [*settings().roots, Path(DEMO_PLAN).parent, *(Path(e) for e in extra)]


def allowed_path(path: str, *, extra: tuple[str, ...] = ()) -> str:
    """``path`` if the dashboard may read it (inside a data root, the demo or ``extra``, with
    symlinks resolved; a regular file or a folder); else ConfigError with one message for every
    path outside the roots and every missing one."""
    confine(path, _roots(extra))
    return path


def allowed_spec(spec: str, *, extra: tuple[str, ...] = ()) -> str:
    """A data spec whose server path passes :func:`allowed_path` (built-in sets always do)."""
    return confine_spec(spec, _roots(extra))


def root_entries(kind: str = "data") -> list[str]:
    """Folders and data files (``kind`` "data") or model files ("model") in the data roots."""
    return data_entries(list(settings().roots), kind=kind)


def device_name(run: RunConfig) -> str:
    """The device a run uses ("cpu", "cuda", "cuda:1"); ConfigError if it is not available."""
    return str(resolve_device(run.device))


@st.cache_resource(show_spinner=False, max_entries=4)
def _checkpoint(
    sha256: str,
    arch: str | None,
    num_classes: int | None,
    in_channels: int,
    trusted: bool,
    device: str,
    _path: str,
) -> LoadedCheckpoint:
    model = ModelConfig(
        _path, arch=arch, num_classes=num_classes, in_channels=in_channels, trusted=trusted
    )
    # The Scorer that loads a model puts it on its device, once, before it is shared; nothing
    # that receives it moves it again.
    return Scorer(model, RunConfig(device=device)).checkpoint()


# The arguments each shared checkpoint and data set was loaded with, by file path: what
# forget_uploads() drops when a workspace (and its files) is deleted.
_LOADED: dict[str, list[tuple[Any, tuple]]] = {}


def _remember(path: str, cache: Any, args: tuple) -> None:
    entries = _LOADED.setdefault(path, [])
    if (cache, args) not in entries:
        entries.append((cache, args))


def forget_uploads(folder: str) -> int:
    """Drop the shared checkpoints and data sets loaded from files under ``folder`` (a deleted
    workspace's), so their memory is freed; returns how many entries were dropped."""
    dropped = 0
    for path in [p for p in _LOADED if p.startswith(folder)]:
        for cache, args in _LOADED.pop(path):
            cache.clear(*args)
            dropped += 1
    return dropped


def checkpoint(model: ModelConfig, device: str) -> LoadedCheckpoint:
    """The loaded checkpoint of ``model`` on ``device`` (shared; never mutate it)."""
    # The Scorer hashes through the store's (path, size, mtime) memo and words a missing file.
    sha256 = Scorer(model, RunConfig(device=device), store=result_store()).checkpoint_sha256()
    args = (sha256, model.arch, model.num_classes, model.in_channels, model.trusted, device)
    loaded = _checkpoint(*args, _path=model.checkpoint)
    _remember(str(model.checkpoint), _checkpoint, (*args, model.checkpoint))
    return loaded


@st.cache_data(show_spinner=False, max_entries=64)
def _layers(
    sha256: str, device: str, shape: tuple[int, int, int], _ckpt: LoadedCheckpoint
) -> list[LayerInfo]:
    return list_layers(_ckpt, input_shape=shape)


def layers(ckpt: LoadedCheckpoint, device: str, image_size: tuple[int, int]) -> list[LayerInfo]:
    """Layers RESQUE can read, with output shapes for inputs of ``image_size`` (H, W)."""
    return _layers(ckpt.sha256, device, (ckpt.in_channels, *image_size), _ckpt=ckpt)


@st.cache_resource(show_spinner=False, max_entries=8)
def _dataset(fingerprint: str, spec: str) -> ImageSet:
    return load_data(spec)


def dataset(spec: str) -> ImageSet:
    """The labelled images of a data spec at their native size (shared; never mutate them)."""
    args = (data_fingerprint(spec), spec)
    loaded = _dataset(*args)
    _remember(spec, _dataset, args)
    return loaded


def input_size(plan: Plan, model: ModelConfig, arch: str | None) -> tuple[int, int]:
    """(H, W) the model is fed: ``model.image_size``, else the source data's native size, else
    the architecture's usual size (224 for torchvision models, 32 for the project's)."""
    if model.image_size:
        return model.image_size
    if plan.source:
        return tuple(dataset(plan.resolve(plan.source)).images.shape[-2:])
    return default_image_size(arch)


def source_accuracy(plan: Plan) -> tuple[float, int]:
    """(top-1 accuracy in [0, 1], number of images) of the plan's model on the seeded held-out
    part of its source data (:func:`resque_core.scoring.source_accuracy`, disk-cached there)."""
    model, run = plan.resolved_model(), plan.run
    source = plan.resolve(plan.source)
    return _source_accuracy(
        model,
        run,
        source,
        store=result_store(),
        checkpoint=checkpoint(model, device_name(run)),
        images=dataset(source),
    )


@st.cache_data(show_spinner=False, max_entries=32)
def _preview(
    fingerprint: str,
    spec: str,
    shift: str,
    severities: tuple[int, ...],
    image_size: tuple[int, int] | None,
    channels: int,
    n: int,
    seed: int,
) -> tuple[np.ndarray, dict[int, np.ndarray], list[str]]:
    images = dataset(spec)
    size = image_size or tuple(images.images.shape[-2:])
    original, shifted, rows = _shift_preview(
        images.images,
        images.labels,
        shift,
        severities,
        to_unit=Preprocess(image_size=size, channels=channels).to_unit,
        n=n,
        seed=seed,
    )
    return original, shifted, [images.classes[int(images.labels[i])] for i in rows]


def shift_preview(
    spec: str,
    shift: str,
    severities: tuple[int, ...],
    *,
    model: ModelConfig,
    n: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, dict[int, np.ndarray], list[str]]:
    """Up to ``n`` source images (one per class) in [0, 1] as the model sees them ([n, C, H, W]),
    the same images after ``shift`` at each severity, and their class names
    (:func:`resque_core.data.shift_preview`)."""
    return _preview(
        data_fingerprint(spec),
        spec,
        shift,
        tuple(severities),
        model.image_size,
        model.in_channels,
        n,
        seed,
    )


def data_summary(spec: str) -> dict[str, Any]:
    """Images, classes and image shape of a data spec (loads it through the shared cache)."""
    images = dataset(spec)
    return {
        "images": int(images.images.shape[0]),
        "classes": len(images.classes),
        "shape": "×".join(str(v) for v in images.images.shape[1:]),
    }


def data_notes(plan: Plan, spec: str, *, shifted: bool) -> list[str]:
    """What happens to the images of ``spec`` on their way to the plan's model (grey <-> colour,
    up- or downscaling) and, for real ``shifted`` data, which class names it does not share
    with the source (a DataError if none)."""
    images = dataset(spec)
    model = plan.resolved_model()
    pre = Preprocess(image_size=input_size(plan, model, model.arch), channels=model.in_channels)
    notes = []
    if shifted and plan.source:
        source = dataset(plan.resolve(plan.source))
        notes += class_overlap(source.classes, images.classes, repr(spec)).notes()
    return notes + pre.notes(tuple(images.images.shape[1:]))
