"""Shareable reports of a stored run: HTML, PDF, Markdown, JSON and CSV.

A run document (a ranking or a validation, as kept by :class:`~resque_core.store.runs.RunStore`) is
turned into one list of blocks (:mod:`.sections`) that every readable format renders the same
way; the report leads with the decision in one sentence (:func:`~.lead.decision`) and how sure
it is.

- ``html``: one self-contained file, charts interactive offline (:mod:`.html`).
- ``pdf``: the HTML printed by a headless Chromium, else a text-only PDF that says the charts
  are omitted (:mod:`.pdf`).
- ``md``: the same sections as Markdown (no charts); ``csv``: the ranking table (a validation:
  the retrained candidates), raw numbers (:mod:`.text`).
- ``json``: the run document itself; :func:`import_run` stores it back unchanged.

Every document is checked by :func:`resque_core.store.documents.check_run` before it is rendered or
imported, so a malformed one is refused with one line naming the bad field.

:func:`render` returns the bytes (for a download button); :func:`export_run` writes a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._util import regular_file
from ..errors import ConfigError
from ..store.documents import RunDoc, check_run
from ..store.runs import RunStore
from ..store.workspaces import without_upload_folders
from .html import _html
from .pdf import _pdf
from .text import _csv, _markdown

__all__ = [
    "FORMATS",
    "Export",
    "ReportFormat",
    "export_run",
    "import_run",
    "load_run",
    "render",
]

ReportFormat = Literal["html", "pdf", "md", "json", "csv"]
FORMATS: dict[str, tuple[str, str]] = {
    "html": ("html", "text/html"),
    "pdf": ("pdf", "application/pdf"),
    "md": ("md", "text/markdown"),
    "json": ("json", "application/json"),
    "csv": ("csv", "text/csv"),
}
"""Format -> (file extension, MIME type)."""

_MAX_IMPORT_BYTES = 64 * 2**20  # a stored run is tens of kB; anything this large is not one


@dataclass(frozen=True)
class Export:
    """A written report: its ``path``, ``format``, size in ``bytes`` and a ``note`` (why a PDF
    has no charts), or None."""

    path: Path
    format: str
    bytes: int
    note: str | None = None


# ----------------------------------------------------------------------------- run documents
def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")


def load_run(run: str | Mapping[str, Any], *, cache_dir: str | os.PathLike | None = None) -> RunDoc:
    """A checked run document: ``run`` itself when it is one, else the stored run with that id
    (``"latest"``: the newest stored run) from the run store under ``cache_dir``."""
    if not isinstance(run, str):
        return check_run(run)
    store = RunStore(cache_dir)
    if run == "latest":
        ids = store.list()
        if not ids:
            raise ConfigError(f"no stored runs in {store.directory}: rank a plan first")
        run = ids[0]
    return check_run(store.load(run))


def import_run(
    source: bytes | str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
) -> str:
    """Store a run exported as JSON (``bytes``: the file's content; ``str`` / path: the file)
    in the run store under ``cache_dir``; return its run id.

    The document is checked (:func:`~resque_core.store.documents.check_run`) and kept unchanged,
    under its own run id (a new one if it has none), so that loading it gives back exactly what
    was exported. Importing the same run twice is harmless; a different run under the same id
    is refused.
    """
    if isinstance(source, bytes | bytearray):
        where = "the uploaded file"
        if len(source) > _MAX_IMPORT_BYTES:
            raise ConfigError(
                f"{where} is {len(source) / 2**20:,.0f} MiB, over the limit of "
                f"{_MAX_IMPORT_BYTES / 2**20:,.0f} MiB for a run export"
            )
        text = bytes(source).decode("utf-8", errors="replace")
    else:
        where = str(source)
        path = regular_file(source, what="run file", error=ConfigError, max_bytes=_MAX_IMPORT_BYTES)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise ConfigError(f"cannot read {where}: {e.strerror or e}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{where} is not JSON ({e.msg}, line {e.lineno}): export it again"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{where} is nested too deeply to be a RESQUE run: export it again"
        ) from None
    doc = check_run(raw)
    store = RunStore(cache_dir)
    run_id = doc.get("run_id")
    if run_id is not None and run_id in store.list():
        if store.load(run_id) == doc:
            return run_id
        raise ConfigError(
            f"a different run with id {run_id!r} is already stored in {store.directory}; "
            "import into another cache directory"
        )
    return store.save(doc, run_id)


# ----------------------------------------------------------------------------- entry points
def _render(doc: RunDoc, fmt: str) -> tuple[bytes, str | None]:
    """``doc`` (already checked) in format ``fmt`` (a known one), and the PDF's note."""
    doc = without_upload_folders(doc)  # uploads by their names, never the server's folders
    if fmt == "pdf":
        return _pdf(doc)
    if fmt == "json":
        return (json.dumps(doc, indent=1, ensure_ascii=False, default=str) + "\n").encode(), None
    text = {"html": _html, "md": _markdown, "csv": _csv}[fmt](doc)
    return text.encode("utf-8"), None


def render(doc: Mapping[str, Any], fmt: ReportFormat) -> bytes:
    """The report of run document ``doc`` in format ``fmt`` (see :data:`FORMATS` for the file
    extension and MIME type of each). A PDF is always produced: text only, with a note, when no
    Chromium can print the charts."""
    _check_format(fmt)
    return _render(check_run(doc), fmt)[0]


def export_run(
    run: str | Mapping[str, Any],
    fmt: ReportFormat,
    out_path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> Export:
    """Write the report of ``run`` (a run document, a stored run id or ``"latest"``) to
    ``out_path`` in format ``fmt``."""
    _check_format(fmt)
    data, note = _render(load_run(run, cache_dir=cache_dir), fmt)
    path = Path(out_path)
    try:
        path.write_bytes(data)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    return Export(path, fmt, len(data), note)
