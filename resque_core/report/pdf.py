"""The PDF report: the static HTML printed by a headless Chromium (:func:`find_chromium`;
``$BROWSER_PATH``, then ``chromium`` / ``chromium-browser`` / Chrome on the PATH; never
downloaded). Without one, or if printing fails, a text-only PDF written here, which says that
the charts are omitted."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .blocks import _Block, _Bullets, _Heading, _Para, _Table
from .html import _html
from .sections import _blocks, _title

__all__ = ["find_chromium"]

_PRINT_TIMEOUT_S = 90.0


def find_chromium() -> str | None:
    """The Chromium (or Chrome) that prints PDFs: ``$BROWSER_PATH`` when set (the variable
    kaleido also reads), else the first of chromium, chromium-browser, google-chrome on the
    PATH. Never downloads one."""
    if "BROWSER_PATH" in os.environ:
        path = os.environ["BROWSER_PATH"]
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class _PrintFailed(Exception):
    pass


def _print_pdf(page: str, chromium: str) -> bytes:
    """``page`` (HTML) printed to PDF by a headless Chromium with the network shut off."""
    with tempfile.TemporaryDirectory(prefix="resque-report-") as tmp:
        src, out = Path(tmp, "report.html"), Path(tmp, "report.pdf")
        src.write_text(page, encoding="utf-8")
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",  # root in containers; the page is our own, with escaped text
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={Path(tmp, 'profile')}",
            "--no-pdf-header-footer",
            "--virtual-time-budget=10000",
            f"--print-to-pdf={out}",
            src.as_uri(),
        ]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                timeout=_PRINT_TIMEOUT_S,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise _PrintFailed(str(e)) from None
        if not out.exists() or not out.read_bytes().startswith(b"%PDF"):
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise _PrintFailed(f"exit code {done.returncode}: {tail[0]}")
        return out.read_bytes()


def _pdf(doc: Mapping[str, Any]) -> tuple[bytes, str | None]:
    chromium = find_chromium()
    if chromium is None:
        note = "charts omitted: no Chromium found for static rendering"
    else:
        try:
            return _print_pdf(_html(doc, static=True), chromium), None
        except _PrintFailed as e:
            note = f"charts omitted: printing with {chromium} failed ({e})"
    return _TextPdf(_title(doc)).render(_blocks(doc), note), note


_PDF_CHARS = str.maketrans({"→": "->", "≤": "<=", "≥": ">=", "×": "x", "ρ": "rho", "π": "pi"})


class _TextPdf:
    """A minimal PDF writer: A4 pages of text in the standard Helvetica and Courier fonts
    (WinAnsi encoding, so no font files), for when no browser can print the HTML report."""

    width, height, margin = 595, 842, 50
    fonts = {
        "body": ("F1", 9.5),
        "bold": ("F2", 9.5),
        "mono": ("F3", 7.0),
        "h1": ("F2", 16.0),
        "h2": ("F2", 12.5),
        "h3": ("F2", 10.5),
    }

    def __init__(self, title: str):
        self.title = title
        self.pages: list[list[str]] = []
        self.y = 0.0

    def _new_page(self) -> None:
        self.pages.append([])
        self.y = self.height - self.margin

    def _line(self, text: str, style: str, gap: float = 1.35) -> None:
        font, size = self.fonts[style]
        if not self.pages or self.y - size * gap < self.margin:
            self._new_page()
        self.y -= size * gap
        raw = text.translate(_PDF_CHARS).encode("cp1252", errors="replace")
        safe = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        self.pages[-1].append(
            f"BT /{font} {size:g} Tf {self.margin} {self.y:.1f} Td (".encode() + safe + b") Tj ET"
        )

    def _chars(self, style: str) -> int:
        """Characters per line (Courier is 0.6 em wide; Helvetica about 0.5 on average)."""
        size = self.fonts[style][1]
        return int((self.width - 2 * self.margin) / (size * (0.6 if style == "mono" else 0.52)))

    def _wrapped(self, text: str, style: str, indent: str = "") -> None:
        for line in textwrap.wrap(text, self._chars(style), subsequent_indent=indent) or [""]:
            self._line(line, style)

    def _table_line(self, text: str) -> None:
        # Cut, not wrapped at spaces: the columns keep their positions on the first line.
        width = self._chars("mono")
        self._line(text[:width], "mono")
        for i in range(width, len(text), width - 4):
            self._line("    " + text[i : i + width - 4], "mono")

    def render(self, blocks: Sequence[_Block], note: str | None) -> bytes:
        first_chart = True
        for b in blocks:
            if isinstance(b, _Heading):
                self.y -= 6
                self._wrapped(b.text, f"h{min(b.level, 3)}")
                if b.level == 1 and note:
                    self._wrapped(f"Note: {note}.", "bold")
            elif isinstance(b, _Para):
                self._wrapped("".join(b.spans), "bold" if b.lead else "body")
                self.y -= 4
            elif isinstance(b, _Bullets):
                for item in b.items:
                    self._wrapped(f"- {item}", "body", indent="  ")
                self.y -= 4
            elif isinstance(b, _Table):
                cells = [list(b.columns), *map(list, b.rows)]
                widths = [min(48, max(len(r[i]) for r in cells)) for i in range(len(b.columns))]
                for r in cells:
                    if not any(r):
                        continue
                    line = "  ".join(
                        (v if len(v) <= w else v[: w - 1] + "~").ljust(w)
                        for v, w in zip(r, widths, strict=True)
                    )
                    self._table_line(line.rstrip())
                self.y -= 6
            elif first_chart:
                first_chart = False
                self._wrapped(f"[{note or 'charts omitted'}; see the HTML export]", "body")
        return self._assemble()

    def _assemble(self) -> bytes:
        objects: list[bytes] = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"",  # the page tree, once the page objects are numbered
            *(
                b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>" % name
                for name in (b"Helvetica", b"Helvetica-Bold", b"Courier")  # F1, F2, F3
            ),
        ]
        title = self.title.translate(_PDF_CHARS).encode("cp1252", errors="replace")
        title = title.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        objects.append(b"<< /Title (" + title + b") /Producer (resque_core report) >>")
        kids = []
        for ops in self.pages:
            stream = zlib.compress(b"\n".join(ops))
            objects.append(
                f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
                + stream
                + b"\nendstream"
            )
            content = len(objects)
            objects.append(
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {self.width} {self.height}] "
                f"/Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> >> "
                f"/Contents {content} 0 R >>".encode()
            )
            kids.append(f"{len(objects)} 0 R")
        objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for i, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
        out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
        out += (
            f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n"
        ).encode()
        return bytes(out)
