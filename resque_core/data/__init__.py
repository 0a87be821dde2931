"""data: see docs/ARCHITECTURE.md."""

# Loaded on first use (PEP 562), so that a module of the room that needs no torch (the data
# fingerprint behind cache keys) can be imported without the others.
_EXPORTS = {
    "builtins": ("FASHION_MNIST_CLASSES",),
    "fingerprint": ("data_fingerprint",),
    "images": ("ClassOverlap", "ImageSet", "LazyImageSet", "class_overlap"),
    "preprocess": ("Preprocess", "parse_floats", "parse_image_size"),
    "shifts": (
        "COMPAT_MODES",
        "SEVERITIES",
        "SHIFT_CHUNK",
        "ShiftSpec",
        "apply_shift",
        "available_shifts",
        "parse_shift",
        "shift_preview",
        "shift_table",
        "shifted_chunks",
    ),
    "sources": ("load_data", "open_data"),
    "specs": ("BUILTINS", "TORCHVISION_DATASETS"),
    "splits": ("stratified_split", "subsample_per_class", "synthetic_shift_roles"),
    "synthetic": (
        "DESCRIPTIONS",
        "SYNTHETIC",
        "Arrays",
        "digits_mod3",
        "digits_parity",
        "letters",
        "shapes",
    ),
}
_LAZY = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)  # the table above is the one list of the room's public names
