"""What a torch.export archive may hold before torch reads it: only the members the program
loader needs (no AOTInductor packages or other native code, no zip tricks) and only plain sympy
arithmetic in its symbolic shapes (torch evaluates those strings as Python). Private to
:mod:`resque_core.model.checkpoints`; the rules are described in its docstring."""

from __future__ import annotations

import ast
import json
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import CheckpointError

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
