"""Check JSON-shaped data against TypedDict declarations (private; used by documents.py).

Types understood: TypedDict (keys marked ``NotRequired`` may be absent; undeclared keys are kept
unchecked), ``X | None``, ``list[X]``, ``dict[K, V]``, ``Literal[...]``, ``str``, ``int``,
``float`` (an int is a number; a bool is neither), ``bool``, ``Any`` and ``Annotated[X, Rule]``
for a constraint beyond the type. A misfit raises :class:`Misfit` with the field's path
(``candidates[2].label``), what it may be, and what it is.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import NoneType, UnionType
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

_SIMPLE = {
    str: ("a string", "strings"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "booleans"),
}


@dataclass(frozen=True)
class Rule:
    """A constraint on a value that already has the right type (``Annotated`` metadata)."""

    what: str
    ok: Callable[[Any], bool]


class Misfit(Exception):
    """A field that does not fit its declaration: where, what it may be, what it is (``got``),
    and whether it is simply ``missing``."""

    def __init__(
        self,
        path: str,
        allowed: str,
        value: Any = None,
        *,
        missing: bool = False,
        got: str | None = None,
    ):
        super().__init__(path)
        self.path, self.allowed, self.missing = path, allowed, missing
        self.got = got if got is not None else shown(value)


def shown(value: Any) -> str:
    """How a misfit value is named in a message: its kind for containers, else short JSON."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def child(path: str, key: str | int) -> str:
    """The path of ``key`` (a list index or an object key) inside ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@cache
def _keys(schema: type) -> tuple[tuple[str, Any, bool], ...]:
    """(key, type, required) of a TypedDict, in declaration order."""
    out = []
    for key, tp in get_type_hints(schema, include_extras=True).items():
        required = get_origin(tp) is not NotRequired
        out.append((key, tp if required else get_args(tp)[0], required))
    return tuple(out)


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` has the outer shape of ``tp`` (its contents are checked after)."""
    origin = get_origin(tp)
    if tp is Any:
        return True
    if origin is Annotated:
        return _fits(value, get_args(tp)[0])
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in get_args(tp))
    if is_typeddict(tp) or origin is dict or tp is dict:
        return isinstance(value, Mapping)
    if origin is list or tp is list:
        return isinstance(value, list | tuple)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, tp)


def plain(value: Any) -> Any:
    """An unchecked part as plain JSON-shaped data (objects as dicts, tuples as lists)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def too_deep(value: Any, max_depth: int) -> str | None:
    """Path of the first container nested deeper than ``max_depth``, or None. Iterative, so that
    hostile data cannot exhaust the interpreter's stack here."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, Mapping):
            items = [(str(k), v) for k, v in item.items()]
        elif isinstance(item, list | tuple):
            items = list(enumerate(item))
        else:
            continue
        if depth > max_depth:
            return path
        stack += [(v, child(path, k), depth + 1) for k, v in reversed(items)]
    return None


@dataclass(frozen=True)
class Checker:
    """Checks values against TypedDicts. ``names``: TypedDict -> what one is, in messages ("a
    candidate result"); ``rules``: TypedDict -> a check across its fields, called with the
    checked object and its path, raising :class:`Misfit`."""

    names: Mapping[type, str]
    rules: Mapping[type, Callable[[dict[str, Any], str], None]] = field(default_factory=dict)

    def describe(self, tp: Any) -> str:
        """What a value of ``tp`` may be, in words ("a list of numbers or null")."""
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            return args[1].what
        if origin in (Union, UnionType):
            return " or ".join(self.describe(a) for a in args if a is not NoneType) + " or null"
        if origin is Literal:
            return "one of " + ", ".join(map(repr, args))
        if is_typeddict(tp):
            return f"an object ({self.names[tp]})"
        if tp in _SIMPLE:
            return _SIMPLE[tp][0]
        if origin is list and args[0] in _SIMPLE:
            return f"a list of {_SIMPLE[args[0]][1]}"
        if origin is list and is_typeddict(args[0]):
            return f"a list of objects (each {self.names[args[0]]})"
        return {list: "a list", dict: "an object"}.get(origin or tp, "a JSON value")

    def check(self, value: Any, tp: Any, path: str = "") -> Any:
        """``value`` checked against ``tp`` and copied as plain data (every key kept, none
        added); raises :class:`Misfit` at the first field that does not fit."""
        origin = get_origin(tp)
        if origin in (Union, UnionType):
            arms = get_args(tp)
            if value is None and NoneType in arms:
                return None
            for arm in arms:
                if arm is not NoneType and _fits(value, arm):
                    return self.check(value, arm, path)
            raise Misfit(path, self.describe(tp), value)
        if not _fits(value, tp):
            raise Misfit(path, self.describe(tp), value)
        if origin is Annotated:
            base, rule = get_args(tp)[:2]
            out = self.check(value, base, path)
            if not rule.ok(out):
                raise Misfit(path, rule.what, value)
            return out
        if is_typeddict(tp):
            checked = {}
            for key, ktp, required in _keys(tp):
                if key in value:
                    checked[key] = self.check(value[key], ktp, child(path, key))
                elif required:
                    raise Misfit(child(path, key), self.describe(ktp), missing=True)
            # the value's own key order, so that data written back reads like what came in
            out = {k: checked[k] if k in checked else plain(v) for k, v in value.items()}
            if tp in self.rules:
                self.rules[tp](out, path)
            return out
        if origin is dict:
            ktp, vtp = get_args(tp)
            out = {}
            for k, v in value.items():
                if not _fits(k, ktp):
                    allowed = f"an object keyed by {self.describe(ktp)}"
                    raise Misfit(path, allowed, got=f"key {shown(k)}")
                out[k] = self.check(v, vtp, child(path, k))
            return out
        if origin is list:
            (itp,) = get_args(tp)
            return [self.check(v, itp, child(path, i)) for i, v in enumerate(value)]
        return plain(value)
