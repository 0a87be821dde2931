"""Architectures a state_dict can be loaded into: the project's own small networks, every
torchvision classification model and every timm model, always built without pretrained weights
(nothing is downloaded).

The project's networks are registered with :func:`register_arch`; :func:`build_model` looks a
name up there first, then in torchvision, then in timm (imported only then). A name both
torchvision and timm know (``resnet18``) is torchvision's; ``timm:NAME`` asks for timm's. Layer
names follow each library's module names (torchvision: ``conv1``, ``layer4.1.conv2``, ``fc``;
timm: ``stages.3``, ``blocks.11``, ``head.fc``).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable

import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from .._util import closest, unknown_name_message
from ..errors import ConfigError

__all__ = [
    "TIMM_PREFIX",
    "available_archs",
    "build_model",
    "project_archs",
    "register_arch",
]

Builder = Callable[..., nn.Module]

_REGISTRY: dict[str, Builder] = {}


def register_arch(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(*, num_classes, in_channels) -> nn.Module`` as ``name``."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorate


def project_archs() -> list[str]:
    """Names of the project's own architectures, sorted."""
    return sorted(_REGISTRY)


@functools.cache
def _torchvision_archs() -> tuple[str, ...]:
    # Only the top-level module: detection, segmentation and video models live in submodules.
    return tuple(torchvision.models.list_models(module=torchvision.models))


TIMM_PREFIX = "timm:"


@functools.cache
def _timm_archs() -> frozenset[str]:
    try:
        import timm
    except ImportError:  # an optional extra: without it, timm names are unknown names
        return frozenset()
    return frozenset(timm.list_models())


def _timm_name(arch: str) -> str | None:
    """The timm model ``arch`` names (``timm:NAME``, or a NAME only timm has), else None."""
    if arch.startswith(TIMM_PREFIX):
        name = arch.removeprefix(TIMM_PREFIX)
        return name if name in _timm_archs() else None
    if arch in _REGISTRY or arch in _torchvision_archs():
        return None
    return arch if arch in _timm_archs() else None


def available_archs() -> list[str]:
    """Every name :func:`build_model` accepts: the project's first, then torchvision's, then
    timm's (``timm:NAME`` where torchvision has the same name)."""
    own = project_archs() + [n for n in _torchvision_archs() if n not in _REGISTRY]
    taken = set(own)
    return own + sorted(f"{TIMM_PREFIX}{n}" if n in taken else n for n in _timm_archs())


def build_model(arch: str, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    """A freshly initialised ``arch`` with ``num_classes`` outputs for ``in_channels`` inputs.

    Torchvision models are built with ``weights=None``. They are designed for 3 input channels;
    for any other ``in_channels`` their first ``nn.Conv2d`` (the stem) is replaced by a new one
    with the same kernel, stride, padding and output channels taking ``in_channels`` inputs. Timm
    models are built with ``pretrained=False`` and ``in_chans=in_channels``.
    Unknown ``arch``: ConfigError listing the closest names.
    """
    for what, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    if arch in _REGISTRY:
        return _REGISTRY[arch](num_classes=num_classes, in_channels=in_channels)
    if arch in _torchvision_archs():
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        if in_channels != 3:
            _replace_stem(model, in_channels)
        return model
    timm_name = _timm_name(arch)
    if timm_name is not None:
        import timm

        # pretrained=False: weights are never fetched; in_chans builds the stem for the input.
        return timm.create_model(
            timm_name, pretrained=False, num_classes=num_classes, in_chans=in_channels
        )
    suggested, every = _suggestions(arch), available_archs()
    message = unknown_name_message("architecture", arch, suggested)
    if len(suggested) > 30 and len(suggested) < len(every):  # count every accepted name
        message = message.replace(f"({len(suggested)} available)", f"({len(every)} available)")
    raise ConfigError(message)


def _suggestions(arch: str) -> list[str]:
    """The names to suggest for an unknown ``arch``: the project's and torchvision's when the
    closest name is one of theirs (timm has many near-twins of each), else every name."""
    own = project_archs() + [n for n in _torchvision_archs() if n not in _REGISTRY]
    every = available_archs()
    if len(every) == len(own) or closest(arch, own, n=1) == closest(arch, every, n=1):
        return own
    return every


def _replace_stem(model: nn.Module, in_channels: int) -> None:
    # Registration order puts the stem first in every torchvision classification model.
    name, old = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, new)


def _stage(inplanes: int, planes: int, n: int, *, stride: int) -> nn.Sequential:
    """``n`` BasicBlocks; the first changes width/resolution through a 1x1 projection."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes),
        )
    blocks = [BasicBlock(inplanes, planes, stride, downsample)]
    blocks += [BasicBlock(planes, planes) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


class CifarResNet(nn.Module):
    """ResNet with BasicBlocks for small images: 3x3 stride-1 stem, no max-pool.

    Input [N, in_channels, H, W] (any H, W >= 1; 32x32 for CIFAR); output [N, num_classes].
    Module names match torchvision's ResNet (``conv1``, ``bn1``, ``layer1..4``, ``fc``).
    """

    def __init__(self, blocks: list[int], *, num_classes: int, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _stage(64, 64, blocks[0], stride=1)
        self.layer2 = _stage(64, 128, blocks[1], stride=2)
        self.layer3 = _stage(128, 256, blocks[2], stride=2)
        self.layer4 = _stage(256, 512, blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@register_arch("cifar_resnet18")
def cifar_resnet18(*, num_classes: int, in_channels: int) -> nn.Module:
    """ResNet-18 for 32x32 images (11.2 M parameters with 10 classes)."""
    return CifarResNet([2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels)


@register_arch("small_cnn")
def small_cnn(*, num_classes: int, in_channels: int) -> nn.Module:
    """Three 3x3 convolutions (32, 64, 128 channels) for 8x8 to 32x32 images (~94 k parameters).

    Input [N, in_channels, H, W] with H, W >= 2; output [N, num_classes]. The last convolution
    is ``features.conv3``; the classifier is ``fc``. ReLUs are not in place, so a hooked
    BatchNorm output is never overwritten by the activation after it.
    """
    features = nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(in_channels, 32, kernel_size=3, padding=1, bias=False)),
                ("bn1", nn.BatchNorm2d(32)),
                ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False)),
                ("bn2", nn.BatchNorm2d(64)),
                ("relu2", nn.ReLU()),
                ("pool", nn.MaxPool2d(2)),
                ("conv3", nn.Conv2d(64, 128, kernel_size=3, padding=1, bias=False)),
                ("bn3", nn.BatchNorm2d(128)),
                ("relu3", nn.ReLU()),
            ]
        )
    )
    # A plain Sequential of torch layers: it scripts, exports and pickles without project code.
    return nn.Sequential(
        OrderedDict(
            [
                ("features", features),
                ("avgpool", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten()),
                ("fc", nn.Linear(128, num_classes)),
            ]
        )
    )
