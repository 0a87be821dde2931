"""The layers RESQUE can read: listing a loaded model's submodules with their output shapes (one
forward pass with temporary hooks) and the default layer per estimator kind."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import ConfigError, DataError, LayerError, ResqueError
from .checkpoints import LoadedCheckpoint, _count, _first_line

__all__ = ["LayerInfo", "default_layer", "list_layers"]


Kind = Literal["dist", "task"]


_KINDS = ("dist", "task")


@dataclass(frozen=True)
class LayerInfo:
    """A layer whose output RESQUE can read: its ``named_modules`` name, class name and
    per-sample output shape (no batch axis), e.g. ``(64, 8, 8)`` for a conv map."""

    name: str
    type: str
    out_shape: tuple[int, ...]


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
