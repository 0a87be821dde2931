"""Loading a checkpoint file into an eval-mode model, and listing the layers RESQUE can read.

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

import ast
import io
import json
import pickle
import re
import threading
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from .._util import file_sha256, regular_file
from ..errors import CheckpointError, ConfigError, DataError, LayerError, ResqueError
from .archs import build_model

__all__ = [
    "LayerInfo",
    "LoadedCheckpoint",
    "default_layer",
    "list_layers",
    "load_checkpoint",
]

Format = Literal["state_dict", "torchscript", "export", "pickle"]
Kind = Literal["dist", "task"]
_KINDS = ("dist", "task")

# Where training scripts usually keep the weights inside a bigger checkpoint dict; the plain
# weights come before the EMA copy.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema")
# DataParallel / DistributedDataParallel and torch.compile wrap the model under these names.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_SHOWN_KEYS = 3

# What ``torch.export.save`` writes for a program (torch 2.14, torch/export/pt2_archive), relative
# to the archive's one root folder; the legacy ``<model>.pt`` weight and constant files of older
# torch versions are vetted by the pickle check like the sample inputs.
_EXPORT_MEMBER = re.compile(
    r"archive_format|archive_version|byteorder|(\.data/)?version|\.data/serialization_id"
    r"|models/\w+\.json|data/sample_inputs/\w+\.pt"
    r"|data/weights/(weight_\d+|\w+_weights_config\.json|\w+\.pt)"
    r"|data/constants/(tensor_\d+|custom_obj_\d+|opaque_obj_\d+|\w+_constants_config\.json"
    r"|\w+\.pt)"
    r"|extra/[\w-]+(\.[\w-]+)*",
    re.ASCII,
)
# Members that are (or carry) compiled code: AOTInductor packages and native libraries/sources.
_NATIVE_MEMBER = re.compile(
    r"data/(aotinductor|executorch|mtia)(/|$)"
    r"|\.(so|dll|dylib|pyd|o|obj|a|lib|c|cc|cpp|h|hpp|cubin|ptx|hsaco|spv|wrapper)(\.|$)",
    re.ASCII,
)
_EXPORT_HINT = (
    "re-export the model with torch.export.save (no AOTInductor packaging), or save "
    "model.state_dict() and pass --arch"
)
# The sympy names ``srepr`` writes for torch's symbolic shapes, and torch's own sympy functions
# (the deserializer's table in torch/_export/serde/serialize.py).
_SYMPY_CALLS = frozenset(
    {
        "Symbol",
        "Integer",
        "Rational",
        "Float",
        "Add",
        "Mul",
        "Pow",
        "Max",
        "Min",
        "Abs",
        "Mod",
        "floor",
        "ceiling",
        "Piecewise",
        "ExprCondPair",
        "Equality",
        "Unequality",
        "StrictLessThan",
        "LessThan",
        "StrictGreaterThan",
        "GreaterThan",
        "And",
        "Or",
        "Not",
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "CleanDiv",
        "CeilToInt",
        "FloorToInt",
        "CeilDiv",
        "LShift",
        "RShift",
        "PowByNatural",
        "FloatPow",
        "FloatTrueDiv",
        "IntTrueDiv",
        "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
    }
)
_SYMPY_CONSTANTS = frozenset({"oo", "zoo", "nan", "true", "false"})
# sympy evaluates powers and shifts of literals at once: 3**2**62 never ends. Their exponent must
# be a symbol or a literal of at most this size, and their base holds no other power.
_POWERS = frozenset({"Pow", "PowByNatural", "FloatPow", "LShift", "RShift"})
_MAX_EXPONENT = 64
_MAX_EXPR_CHARS = 4096
_LITERAL = re.compile(r"[A-Za-z_]\w{0,63}|[-+]?[0-9.]{1,40}([eE][-+]?[0-9]{1,4})?", re.ASCII)

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


@dataclass(frozen=True)
class LayerInfo:
    """A layer whose output RESQUE can read: its ``named_modules`` name, class name and
    per-sample output shape (no batch axis), e.g. ``(64, 8, 8)`` for a conv map."""

    name: str
    type: str
    out_shape: tuple[int, ...]


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


def _refused(path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} {what}, so it is refused even if trusted: {_EXPORT_HINT}"
    )


def _check_export_members(path: Path, zf: zipfile.ZipFile) -> None:
    """Refuse a torch.export archive with any member ``torch.export.load`` does not need.

    Python's zip reader and torch's (miniz) must list the same members, so a zip crafted to show
    each reader a different directory is refused too.
    """
    names = zf.namelist()
    root = names[0].split("/", 1)[0] if names else ""
    seen: set[str] = set()
    for name in names:
        parts = name.rstrip("/").split("/")
        if name.startswith("/") or "\\" in name or "\0" in name or {"", ".", ".."} & set(parts):
            raise _refused(
                path, f"has an unsafe member name {name!r} (absolute, '..', '.', '\\' or '//')"
            )
        if name in seen:
            raise _refused(path, f"lists the member {name} twice")
        seen.add(name)
        if parts[0] != root or len(parts) < 2:
            raise _refused(path, f"has a member outside its root folder {root}/ ({name})")
        relative = name[len(root) + 1 :]
        if _NATIVE_MEMBER.search(relative):
            raise _refused(path, f"carries native code ({name}); loading it would run that code")
        if not _EXPORT_MEMBER.fullmatch(relative):
            raise _refused(path, f"has a member that a torch.export program does not need ({name})")
    records = torch._C.PyTorchFileReader(str(path)).get_all_records()
    listed = sorted(n[len(root) + 1 :] for n in names)
    if sorted(records) != listed:
        differ = sorted(set(records).symmetric_difference(listed)) or listed
        raise _refused(path, f"lists its members differently to torch's zip reader ({differ[0]})")


def _symbolic_exprs(doc: object) -> Iterable[str]:
    """Every ``expr_str`` (a sympy ``srepr`` string) in a serialized program, at any depth."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "expr_str" and isinstance(value, str):
                    yield value
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _is_small_number(node: ast.expr) -> bool:
    """A literal exponent: ints of at most ``_MAX_EXPONENT``, or Integer(...)/Rational(...)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            if not (isinstance(sub.func, ast.Name) and sub.func.id in ("Integer", "Rational")):
                return False
        elif isinstance(sub, ast.Constant):
            if type(sub.value) is not int or abs(sub.value) > _MAX_EXPONENT:
                return False
        elif not isinstance(sub, (ast.Name, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load)):
            return False
    return True


def _plain_arithmetic(text: str) -> bool:
    """Whether ``text`` is a sympy expression sympify can evaluate without running other code:
    calls of the sympy classes torch writes, literals and nothing else (no attribute, subscript,
    lambda or name outside the lists)."""
    if len(text) > _MAX_EXPR_CHARS:
        return False
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree.body):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _SYMPY_CALLS):
                return False
            if any(k.arg is None for k in node.keywords):
                return False
            if node.func.id in _POWERS:
                if len(node.args) != 2 or node.keywords:
                    return False
                base, exponent = node.args
                is_symbol = (
                    isinstance(exponent, ast.Call)
                    and isinstance(exponent.func, ast.Name)
                    and exponent.func.id == "Symbol"
                )
                if not (is_symbol or _is_small_number(exponent)) or any(
                    isinstance(sub, ast.Name) and sub.id in _POWERS for sub in ast.walk(base)
                ):
                    return False
        elif isinstance(node, ast.Name):
            if node.id not in _SYMPY_CALLS and node.id not in _SYMPY_CONSTANTS:
                return False
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str):
                if not _LITERAL.fullmatch(value):
                    return False
            elif type(value) is int:
                if abs(value) >= 2**63:
                    return False
            elif type(value) not in (bool, float):
                return False
        elif not isinstance(node, (ast.keyword, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load)):
            return False
    return True


def _check_symbolic_shapes(path: Path, zf: zipfile.ZipFile) -> None:
    """Refuse a program whose symbolic shapes are not plain arithmetic: ``torch.export.load``
    hands each ``expr_str`` to ``sympy.sympify``, which evaluates it as Python."""
    for name in zf.namelist():
        if not name.split("/", 1)[1].startswith("models/"):  # members were checked already
            continue
        for text in _symbolic_exprs(json.loads(zf.read(name))):
            if not _plain_arithmetic(text):
                shown = text if len(text) <= 80 else text[:77] + "..."
                raise _refused(
                    path,
                    f"has a symbolic shape in {name} that is not plain arithmetic ({shown!r}); "
                    "torch would evaluate it as Python",
                )


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


# ------------------------------------------------------------------ layers
def list_layers(ckpt: LoadedCheckpoint, *, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
    """Every named submodule whose output is a tensor, in the order their forward passes end.

    Runs one forward pass on zeros of shape [1, *input_shape] ((channels, height, width)) under
    ``torch.inference_mode`` with temporary hooks, always removed; the hooks ignore other
    threads, so a shared model can be listed while another session uses it. ``out_shape`` is
    per sample (no batch axis). An input the model cannot take is a DataError saying which
    setting to change; a TorchScript model is a LayerError (only its final output is reachable).
    """
    if not ckpt.hookable:
        raise LayerError(
            f"{ckpt.path} is a TorchScript archive: TorchScript modules run no forward hooks "
            f"(torch {torch.__version__}), so only the model's final output is reachable, not its "
            "layers; to read a layer, save model.state_dict() and pass --arch, or save a "
            "torch.export program (torch.export.save)"
        )
    if len(input_shape) != 3 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in input_shape
    ):
        raise ConfigError(
            f"input shape must be three positive integers (channels, height, width), "
            f"got {input_shape!r}"
        )
    model = ckpt.model
    reference = next(model.parameters(), None)
    if reference is None:
        reference = next(model.buffers(), torch.zeros(()))
    dtype = reference.dtype if reference.is_floating_point() else torch.float32
    x = torch.zeros((1, *input_shape), dtype=dtype, device=reference.device)

    owner = threading.get_ident()
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str, output: object) -> None:
        if threading.get_ident() == owner and isinstance(output, torch.Tensor):
            # First completion fixes the position; a module called again keeps its last shape.
            shapes[name] = tuple(output.shape[1:])

    modules = dict(model.named_modules())
    modules.pop("", None)
    handles = []
    try:
        for name, module in modules.items():
            # A scripted submodule inside a Python model cannot take hooks; it is skipped.
            if not isinstance(module, torch.jit.ScriptModule):
                handles.append(
                    module.register_forward_hook(lambda _m, _i, out, name=name: record(name, out))
                )
        with torch.inference_mode():
            model(x)
    except ResqueError:
        raise
    except Exception as e:  # user models fail on bad shapes with any exception type
        raise _input_error(ckpt, input_shape, e) from None
    finally:
        for handle in handles:
            handle.remove()
    return [
        LayerInfo(name, ckpt.module_types.get(name, type(modules[name]).__name__), shape)
        for name, shape in shapes.items()
    ]


def _input_error(
    ckpt: LoadedCheckpoint, input_shape: tuple[int, int, int], e: BaseException
) -> DataError:
    first = _first_line(e)
    channels, height, width = input_shape
    # Conv2d says "to have 3 channels"; a torch.export program "shape[1] to be equal to 3".
    said = re.search(r"to have (\d+) channels|\.shape\[1\] to be equal to (\d+)", first)
    expected = int(said.group(1) or said.group(2)) if said else ckpt.in_channels
    if expected != channels:
        return DataError(
            f"the model expects {_count(expected, 'input channel')}, got {channels}: set the "
            f"channels to {expected} (--in-channels {expected}; 'Input channels' in the app) "
            f"(torch: {first})"
        )
    return DataError(
        f"the model cannot take {height}x{width} images: it needs a bigger image or the size it "
        f"was built for; set the image size (--image-size; 'Image size' in the app) "
        f"(torch: {first})"
    )


def default_layer(layers: list[LayerInfo], kind: Kind) -> str:
    """The layer RESQUE reads when none is chosen (same rule for both kinds).

    1. Transformer-like models — a token sequence (2-D per-sample output, (T, D)) appears after
       the last Conv2d, whose only conv is then the patch embedding: the last module with a
       token-sequence output, preferring a leaf over the container that just returns it (for
       torchvision's ViT: ``encoder.ln``).
    2. Otherwise the last Conv2d (the reference hooks the final convolution).
    3. Otherwise the penultimate Linear (the embedding before the classifier), else the last
       Linear.
    LayerError when none applies; ConfigError for an unknown ``kind``.
    """
    if kind not in _KINDS:
        raise ConfigError(f"unknown layer kind {kind!r}; allowed: {', '.join(_KINDS)}")
    convs = [info for info in layers if info.type == "Conv2d"]
    last_conv = layers.index(convs[-1]) if convs else -1
    tokens = [info for info in layers[last_conv + 1 :] if len(info.out_shape) == 2]
    if tokens:
        leaves = [
            info
            for info in tokens
            if not any(other.name.startswith(info.name + ".") for other in tokens)
        ]
        return leaves[-1].name
    if convs:
        return convs[-1].name
    linears = [info for info in layers if info.type == "Linear"]
    if linears:
        return linears[-2].name if len(linears) >= 2 else linears[-1].name
    raise LayerError(
        "the model has no Conv2d, token-sequence or Linear layer to read by default; "
        "choose a layer (--layer)"
    )
