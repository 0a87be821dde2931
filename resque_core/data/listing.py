"""Which files of a folder or zip are a data set's images, and their classes, read from names
alone (nothing decoded, no torch): the ImageFolder layout of :mod:`resque_core.data.sources`.
The fingerprint and the loaders share it, so both see the same images."""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

from PIL import Image

from ..errors import DataError
from .specs import _reason

__all__: list[str] = []

_SKIPPED_NAMES = ("__MACOSX",)


@functools.cache
def _image_extensions() -> frozenset[str]:
    return frozenset(
        ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN
    )


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_NAMES


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _image_extensions()


def _layout(
    files: list[str], dirs: set[str], where: str
) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes (sorted top-level folders) and (relative path, label) of the image files in them;
    ``files`` are '/'-separated relative paths, ``dirs`` the top-level folder names."""
    classes = sorted(dirs | {f.split("/", 1)[0] for f in files if "/" in f})
    index = {c: i for i, c in enumerate(classes)}
    images = [(f, index[f.split("/", 1)[0]]) for f in sorted(files) if "/" in f and _is_image(f)]
    if not classes and any(_is_image(f) for f in files):
        raise DataError(
            f"{where} has images but no class folders: put each class's images in a sub-folder "
            "named after the class (root/<class>/<image>)"
        )
    if not images:
        raise DataError(f"{where} contains no images (expected root/<class>/<image> files)")
    return classes, images


def _walk(root: Path) -> tuple[list[str], set[str]]:
    """Non-hidden files under ``root`` ('/'-separated, relative) and its top-level folders.

    A folder that cannot be listed is a DataError (never an empty class). Entries that are no
    regular file (FIFOs, sockets, devices) are left out unless named like an image: those stay,
    to be refused by name when read.
    """

    def refuse(e: OSError) -> None:
        if Path(e.filename or root) == root:
            raise DataError(f"cannot read data folder {root}: {_reason(e)}")
        raise DataError(f"cannot read folder {e.filename} of data folder {root}: {_reason(e)}")

    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=refuse):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        files += [
            prefix + f
            for f in sorted(filenames)
            if not _skipped(f) and (_is_image(f) or _is_regular(Path(dirpath) / f))
        ]
    tops = {p.name for p in root.iterdir() if p.is_dir() and not _skipped(p.name)}
    return files, tops


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return True  # kept: reading it names the problem (regular_file's message)
