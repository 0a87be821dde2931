"""data: see docs/ARCHITECTURE.md."""

from .builtins import FASHION_MNIST_CLASSES
from .fingerprint import data_fingerprint
from .images import ImageSet
from .preprocess import Preprocess, parse_floats, parse_image_size
from .shifts import (
    SEVERITIES,
    SHIFT_CHUNK,
    ShiftSpec,
    apply_shift,
    available_shifts,
    parse_shift,
    shift_preview,
    shift_table,
    shifted_chunks,
)
from .sources import load_data
from .specs import BUILTINS, TORCHVISION_DATASETS
from .splits import stratified_split, subsample_per_class, synthetic_shift_roles
from .synthetic import DESCRIPTIONS, SYNTHETIC, Arrays, digits_mod3, digits_parity, letters, shapes

__all__ = [
    "Arrays",
    "BUILTINS",
    "DESCRIPTIONS",
    "FASHION_MNIST_CLASSES",
    "ImageSet",
    "Preprocess",
    "SEVERITIES",
    "SHIFT_CHUNK",
    "SYNTHETIC",
    "ShiftSpec",
    "TORCHVISION_DATASETS",
    "apply_shift",
    "available_shifts",
    "data_fingerprint",
    "digits_mod3",
    "digits_parity",
    "letters",
    "load_data",
    "parse_floats",
    "parse_image_size",
    "parse_shift",
    "shapes",
    "shift_preview",
    "shift_table",
    "shifted_chunks",
    "stratified_split",
    "subsample_per_class",
    "synthetic_shift_roles",
]
