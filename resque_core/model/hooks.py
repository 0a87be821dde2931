"""Reading one layer's output without changing the model.

:func:`tap` registers a forward hook for the duration of a ``with`` block and always removes it.
The hook fires only for forward passes made by the thread that opened the tap, so a model shared
between app sessions (``st.cache_resource``) can be tapped by several threads at once without
one session seeing another's activations. With ``stop=True`` the forward pass is cut short right
after the layer: the rest of the network is never computed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .._util import unknown_name_message
from ..errors import LayerError

__all__ = ["find_module", "tap"]


class _Stop(Exception):
    """Raised inside the hook to end a forward pass early, carrying the captured output."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.output = output


def _first_tensor(output: object) -> torch.Tensor:
    # Some blocks return tuples (attention weights, caches): the activation is the first tensor.
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise LayerError(
        f"the layer returns {type(output).__name__}, not a tensor; choose another layer"
    )


def find_module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule called ``layer`` (a ``named_modules`` name); LayerError lists close names."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if layer not in modules:
        raise LayerError(unknown_name_message("layer", layer, modules))
    return modules[layer]


@contextmanager
def tap(
    model: nn.Module, layer: str, *, stop: bool = True
) -> Iterator[Callable[..., torch.Tensor]]:
    """Yield ``fn(x) -> output of `layer` for input x`` for the duration of the block.

    ``fn`` runs ``model(x)``; the result is the layer's raw output (first tensor if it returns
    several), detached. With ``stop=True`` nothing after the layer is computed.
    """
    module = find_module(model, layer)
    owner = threading.get_ident()
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if threading.get_ident() != owner:
            return
        out = _first_tensor(output).detach()
        if stop:
            raise _Stop(out)
        captured.append(out)

    handle = module.register_forward_hook(hook)

    def run(x: torch.Tensor) -> torch.Tensor:
        captured.clear()
        try:
            model(x)
        except _Stop as s:
            return s.output
        if not captured:
            raise LayerError(f"layer {layer!r} was not executed by the model's forward pass")
        # A module called several times per forward (shared blocks): the last call counts.
        return captured[-1]

    try:
        yield run
    finally:
        handle.remove()
