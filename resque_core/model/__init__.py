"""model: see docs/ARCHITECTURE.md."""

from .archs import available_archs, build_model, project_archs, register_arch
from .checkpoints import LoadedCheckpoint, load_checkpoint
from .hooks import find_module, tap
from .layers import LayerInfo, default_layer, list_layers

__all__ = [
    "LayerInfo",
    "LoadedCheckpoint",
    "available_archs",
    "build_model",
    "default_layer",
    "find_module",
    "list_layers",
    "load_checkpoint",
    "project_archs",
    "register_arch",
    "tap",
]
