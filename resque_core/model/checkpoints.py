"""Loading a checkpoint file into an eval-mode model (the layers it offers: :mod:`.layers`).

A file is recognised by its content, not its extension:

- a TorchScript archive (``torch.jit.save``) is loaded with ``torch.jit.load``;
- a ``torch.export`` archive (``torch.export.save``, usually ``.pt2``) with
  ``torch.export.load`` and ``torch.export.unflatten``, which keeps the module hierarchy so that
  forward hooks reach every layer;
- anything else with ``torch.load(weights_only=True)``: a state_dict (possibly nested under
  ``state_dict``, ``model_state_dict``, ``model`` or ``state_dict_ema``, tried in that order)
  loaded into ``arch`` from :mod:`resque_core.model.archs`.

Pickled Python objects (a whole ``nn.Module`` saved with ``torch.save(model)``, or the pickled
parts ``torch.export.load`` would unpickle) can run code when loaded: they are refused unless the
caller passes ``trusted=True``. There is no silent fallback.

A torch.export archive is checked before torch reads it, trusted or not: every zip member must be
one the program loader needs (see ``_EXPORT_MEMBER``), so AOTInductor packages, whose shared
libraries ``torch.export.load`` would ``dlopen``, and any other file are refused, as are zip tricks
(repeated names, absolute paths, ``..``); and every symbolic shape in the program must be plain
sympy arithmetic, because torch evaluates those strings as Python. RESQUE never needs compiled
kernels, so trust does not lift these checks. TorchScript archives need no such check:
``torch.jit.load`` compiles their ``code/`` with the TorchScript compiler (no Python ``exec``),
reads constants with its own restricted unpickler and never loads a library from the archive.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from .._util import file_sha256, regular_file
from ..errors import CheckpointError
from ._export_archive import _check_export_members, _check_symbolic_shapes
from .archs import build_model

__all__ = ["LoadedCheckpoint", "load_checkpoint"]

Format = Literal["state_dict", "torchscript", "export", "pickle"]

# Where training scripts usually keep the weights inside a bigger checkpoint dict; the plain
# weights come before the EMA copy.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema")
# DataParallel / DistributedDataParallel and torch.compile wrap the model under these names.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_SHOWN_KEYS = 3


_TRUST_HINT = (
    "if you trust its origin, retry with --trust-checkpoint (CLI) or the 'Trust this file' "
    "switch (app); or save model.state_dict() and pass --arch"
)


@dataclass
class LoadedCheckpoint:
    """A model ready for forward passes, and what is known about it.

    ``model``: eval mode, on CPU when loaded; callers may move it to a device but must not
    otherwise change it (the app shares it between sessions). ``sha256``: hex digest of the
    file's bytes. ``arch``: the architecture a state_dict was loaded into; None for TorchScript,
    torch.export and pickled models, which carry their own network. ``num_classes``: outputs of
    the last 2-D weight (the classifier), else the value passed in, else None. ``in_channels``:
    input channels of the first 4-D weight (the stem convolution), else the value passed in.
    ``hookable``: False when intermediate outputs cannot be reached (TorchScript).
    ``module_types``: original class names of submodules whose class the loader replaced
    (torch.export: unflattening turns every submodule into an ``InterpreterModule``).
    """

    model: nn.Module
    sha256: str
    path: str
    format: Format
    arch: str | None
    num_classes: int | None
    in_channels: int
    n_parameters: int
    hookable: bool
    module_types: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ loading
def load_checkpoint(
    path: str | Path,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    in_channels: int = 3,
    trusted: bool = False,
) -> LoadedCheckpoint:
    """Load ``path`` (state_dict, TorchScript, torch.export or, if ``trusted``, a pickled model).

    A state_dict needs ``arch``. ``num_classes`` defaults to the number of rows of the state
    dict's last 2-D weight (its classifier). ``in_channels`` is read from the first 4-D weight
    (the stem convolution) whenever the file has one, whatever the argument says: the weights
    fix it; the argument is used only for models without a convolution. The state dict must fit
    the architecture exactly (strict loading). Every problem is a CheckpointError naming the
    file (an unknown ``arch`` is a ConfigError).
    """
    p = regular_file(path, what="checkpoint", error=CheckpointError)
    sha256 = file_sha256(p)
    kind = _sniff(p)
    module_types: dict[str, str] = {}
    if kind == "torchscript":
        model, fmt, arch = _load_torchscript(p), "torchscript", None
    elif kind == "export":
        model, module_types = _load_export(p, trusted=trusted)
        fmt, arch = "export", None
    else:
        obj = _torch_load(p, trusted=trusted)
        module = _pickled_module(obj)
        if module is not None:
            model, fmt, arch = module, "pickle", None
        else:
            state = _clean(_find_state_dict(obj, p))
            if arch is None:
                raise CheckpointError(
                    f"checkpoint {path} is a state_dict: pass its architecture with --arch "
                    "(e.g. resnet18, small_cnn) or choose it in the app"
                )
            model = _load_state_dict(
                state,
                path=p,
                arch=arch,
                num_classes=(
                    num_classes if num_classes is not None else _classifier_outputs(state.items())
                ),
                in_channels=_stem_channels(state.items()) or in_channels,
            )
            fmt = "state_dict"
    model.to("cpu").eval()
    weights = list(model.state_dict().items())
    return LoadedCheckpoint(
        model=model,
        sha256=sha256,
        path=str(path),
        format=fmt,
        arch=arch,
        num_classes=_classifier_outputs(weights) or num_classes,
        in_channels=_stem_channels(weights) or in_channels,
        n_parameters=sum(t.numel() for t in model.parameters()),
        hookable=not isinstance(model, torch.jit.ScriptModule),
        module_types=module_types,
    )


def _not_torch(path: Path) -> CheckpointError:
    return CheckpointError(
        f"cannot read checkpoint {path}: not a PyTorch file "
        "(state_dict, TorchScript or torch.export archive)"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _sniff(path: Path) -> Literal["torchscript", "export", "torch"]:
    """Which loader reads ``path``; files that are not zip archives go to ``torch.load``
    (the legacy ``torch.save`` format), which decides whether they are PyTorch files."""
    if not zipfile.is_zipfile(path):
        return "torch"
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if any(n.endswith("/constants.pkl") for n in names) and any(
                "/code/" in n for n in names
            ):
                return "torchscript"
            formats = [n for n in names if n.endswith("/archive_format")]
            if any(zf.read(n) == b"pt2" for n in formats):
                return "export"
    except (zipfile.BadZipFile, OSError):
        raise _not_torch(path) from None
    if any(n.endswith("data.pkl") for n in names):
        return "torch"
    raise _not_torch(path)


def _load_torchscript(path: Path) -> nn.Module:
    # torch.jit.load warns that TorchScript is deprecated on every call; the file is what it is.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as e:  # the C++ loader raises RuntimeError and others on bad archives
            raise CheckpointError(
                f"cannot read TorchScript archive {path}: {_first_line(e)}"
            ) from None


def _untrusted(path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} contains pickled Python objects ({what}); loading it could run "
        f"code, so it was refused; {_TRUST_HINT}"
    )


def _export_pickles(zf: zipfile.ZipFile) -> list[str]:
    """Members of a torch.export archive that ``torch.export.load`` would unpickle with full
    pickle (it falls back to ``weights_only=False``) and that are not plain tensors."""
    from torch.export.pt2_archive.constants import (
        CUSTOM_OBJ_FILENAME_PREFIX,
        OPAQUE_OBJ_FILENAME_PREFIX,
    )

    names = zf.namelist()
    objects: list[str] = []
    tensors = [n for n in names if n.endswith(".pt")]  # sample inputs, legacy weight files
    for config_name in names:
        folder, _, base = config_name.rpartition("/")
        if not base.endswith("_config.json") or not folder.endswith(("weights", "constants")):
            continue
        for meta in json.loads(zf.read(config_name)).get("config", {}).values():
            member = f"{folder}/{meta['path_name']}"
            if meta["path_name"].startswith(
                (CUSTOM_OBJ_FILENAME_PREFIX, OPAQUE_OBJ_FILENAME_PREFIX)
            ):
                objects.append(member)
            elif meta.get("use_pickle"):
                tensors.append(member)
    for member in tensors:
        try:
            torch.load(io.BytesIO(zf.read(member)), map_location="cpu", weights_only=True)
        except Exception:  # any failure means weights_only cannot vouch for it
            objects.append(member)
    return objects


def _load_export(path: Path, *, trusted: bool) -> tuple[nn.Module, dict[str, str]]:
    try:
        with zipfile.ZipFile(path) as zf:
            _check_export_members(path, zf)
            _check_symbolic_shapes(path, zf)
            unsafe = [] if trusted else _export_pickles(zf)
        if unsafe:
            raise _untrusted(path, f"in {unsafe[0]}")
        program = torch.export.load(path)
    except CheckpointError:
        raise
    except Exception as e:  # malformed configs and deserialisation errors share no base class
        raise CheckpointError(
            f"cannot read torch.export archive {path}: {_first_line(e)}"
        ) from None
    inputs = program.graph_signature.user_inputs
    if len(inputs) != 1:
        raise CheckpointError(
            f"the torch.export program in {path} takes {len(inputs)} inputs; RESQUE feeds one "
            "image batch: export a model whose forward takes one tensor"
        )
    example = next(n for n in program.graph.nodes if n.name == inputs[0]).meta.get("val")
    if (
        isinstance(example, torch.Tensor)
        and example.dim() > 0
        and isinstance(example.shape[0], int)
    ):
        raise CheckpointError(
            f"the torch.export program in {path} was exported for a fixed batch of "
            f"{example.shape[0]}; RESQUE feeds batches of any size: re-export with an example "
            "batch of 2 or more and dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)"
        )
    types: dict[str, str] = {}
    for node in program.graph.nodes:
        for module_path, cls in node.meta.get("nn_module_stack", {}).values():
            # A module called twice appears as "name@1"; its class is the same.
            types[module_path.split("@")[0]] = str(cls).rsplit(".", 1)[-1]
    types.pop("", None)
    return torch.export.unflatten(program), types


def _torch_load(path: Path, *, trusted: bool) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # The weights-only unpickler names the first class or function it would have imported.
        found = re.search(r"GLOBAL (\S+)", str(e))
        if found is None:
            raise _not_torch(path) from None
        if not trusted:
            raise _untrusted(path, f"e.g. {found.group(1)}") from None
    except Exception:  # corrupt bytes fail anywhere in the unpickler, with any exception type
        raise _not_torch(path) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a missing class (ModuleNotFoundError, AttributeError), bad data
        raise CheckpointError(
            f"cannot unpickle checkpoint {path}: {type(e).__name__}: {_first_line(e)}; import "
            "the module that defines its classes first, or save model.state_dict() and pass "
            "--arch"
        ) from None


def _pickled_module(obj: object) -> nn.Module | None:
    """The nn.Module of a trusted pickle: the object itself, or under "model" in a dict."""
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), nn.Module):
        return obj["model"]
    return None


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _find_state_dict(obj: object, path: Path) -> Mapping[str, torch.Tensor]:
    if _is_state_dict(obj):
        return obj
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict or a model"
        )
    for key in _NESTED_KEYS:
        if _is_state_dict(obj.get(key)):
            return obj[key]
    keys = ", ".join(map(str, list(obj)[:8]))
    raise CheckpointError(
        f"checkpoint {path} holds a dict without weights (keys: {keys}); expected a state_dict "
        f"of tensors, at the top or under one of: {', '.join(_NESTED_KEYS)}"
    )


def _clean(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    cleaned = {}
    for key, value in state.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        cleaned[key] = value
    return cleaned


def _weights(items: Iterable[tuple[str, torch.Tensor]], ndim: int) -> list[torch.Tensor]:
    return [
        t
        for k, t in items
        if (k == "weight" or k.endswith(".weight")) and t.is_floating_point() and t.dim() == ndim
    ]


def _classifier_outputs(items: Iterable[tuple[str, torch.Tensor]]) -> int | None:
    """Rows of the last 2-D weight: the classifier's outputs in registration order."""
    found = _weights(items, 2)
    return int(found[-1].shape[0]) if found else None


def _stem_channels(items: Iterable[tuple[str, torch.Tensor]]) -> int | None:
    """Input channels of the first 4-D weight: the stem convolution in registration order."""
    found = _weights(items, 4)
    return int(found[0].shape[1]) if found else None


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _few(items: list[str]) -> str:
    more = len(items) - _SHOWN_KEYS
    return ", ".join(items[:_SHOWN_KEYS]) + (f" (+{more} more)" if more > 0 else "")


def _load_state_dict(
    state: dict[str, torch.Tensor],
    *,
    path: Path,
    arch: str,
    num_classes: int | None,
    in_channels: int,
) -> nn.Module:
    if num_classes is None:
        raise CheckpointError(
            f"cannot infer the number of classes of {path}: it has no 2-D classifier weight; "
            "pass --num-classes"
        )
    model = build_model(arch, num_classes=num_classes, in_channels=in_channels)
    expected = model.state_dict()
    # BatchNorm fills in a missing batch counter itself (checkpoints from before torch 0.4.1).
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {_shape(state[k])}, model {_shape(v)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{label}: {_few(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch", mismatched),
        )
        if keys
    ]
    where = (
        f"checkpoint {path} does not fit architecture {arch!r} "
        f"({num_classes} classes, {_count(in_channels, 'input channel')})"
    )
    if problems:
        raise CheckpointError(f"{where}: {'; '.join(problems)}; check --arch and --num-classes")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{where}: {_first_line(e)}") from None
    return model
