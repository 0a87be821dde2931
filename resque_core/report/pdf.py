"""The PDF report: the static HTML printed by a headless Chromium (:func:`find_chromium`;
``$BROWSER_PATH``, then ``chromium`` / ``chromium-browser`` / Chrome on the PATH; never
downloaded). Without one, or if printing fails, a text-only PDF written with fpdf2, which says
that the charts are omitted.

The text-only PDF embeds a Unicode TrueType font found on this machine (``$RESQUE_PDF_FONT``, else
DejaVu Sans, Noto Sans or Liberation Sans from the usual font folders), so class names in Greek,
Cyrillic, Arabic or other scripts the font covers print as written; CJK fonts found there
(Noto Sans CJK, WenQuanYi, Droid Sans Fallback) back it up. Without any TrueType font it falls
back to the PDF core fonts, which hold only Latin-1: other characters print as ``?``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import textwrap
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
_FONT_ENV = "RESQUE_PDF_FONT"
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
# (regular, bold, mono) file names, first found wins.
_FONT_FILES = (
    ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf"),
    ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf", "NotoSansMono-Regular.ttf"),
    ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf", "LiberationMono-Regular.ttf"),
)
_FALLBACK_FILES = ("NotoSansCJK-Regular.ttc", "wqy-microhei.ttc", "DroidSansFallbackFull.ttf")


@functools.cache
def _font_index() -> dict[str, Path]:
    """File name -> path of the TrueType fonts under the usual font folders."""
    found: dict[str, Path] = {}
    for folder in _FONT_DIRS:
        root = Path(folder).expanduser()
        if root.is_dir():
            for path in sorted(root.rglob("*.tt[fc]")):
                found.setdefault(path.name, path)
    return found


def _unicode_fonts() -> tuple[dict[str, Path], list[Path]] | None:
    """({"regular", "bold", "mono"}: font file) of the first family found, and fallback fonts
    for scripts it lacks; None without any TrueType font."""
    fallbacks = [p for name in _FALLBACK_FILES if (p := _font_index().get(name))]
    own = os.environ.get(_FONT_ENV)
    if own and Path(own).is_file():
        path = Path(own)
        return {"regular": path, "bold": path, "mono": path}, fallbacks
    for regular, bold, mono in _FONT_FILES:
        paths = [_font_index().get(n) for n in (regular, bold, mono)]
        if paths[0] is not None:
            r = paths[0]
            return {"regular": r, "bold": paths[1] or r, "mono": paths[2] or r}, fallbacks
    return None


class _TextPdf:
    """A4 pages of text written with fpdf2, for when no browser can print the HTML report:
    headings, paragraphs, bullets and tables as fixed-width lines (charts are named, not drawn).
    """

    width, height, margin = 595, 842, 50
    sizes = {"body": 9.5, "bold": 9.5, "mono": 7.0, "h1": 16.0, "h2": 12.5, "h3": 10.5}

    def __init__(self, title: str):
        from fpdf import FPDF

        self.title = title
        self.pdf = FPDF(orientation="portrait", unit="pt", format="A4")
        self.pdf.set_margins(self.margin, self.margin, self.margin)
        self.pdf.set_auto_page_break(True, margin=self.margin)
        self.pdf.set_title(title if self._unicode_ok() else self._latin(title))
        self.pdf.set_producer("resque_core report")
        self.pdf.add_page()

    @functools.cached_property
    def _faces(self) -> dict[str, tuple[str, str]]:
        """Style -> (family, fpdf style): embedded Unicode fonts, else the core fonts."""
        fonts = _unicode_fonts()
        if fonts is None:
            core = {"body": ("helvetica", ""), "bold": ("helvetica", "B"), "mono": ("courier", "")}
            return {**core, "h1": core["bold"], "h2": core["bold"], "h3": core["bold"]}
        faces, fallbacks = fonts
        for style, path in faces.items():
            self.pdf.add_font(f"resque-{style}", "", str(path))
        names = []
        for i, path in enumerate(fallbacks):
            try:
                self.pdf.add_font(f"resque-fallback{i}", "", str(path))
                names.append(f"resque-fallback{i}")
            except Exception:  # a collection fpdf2 cannot read: go on without it
                continue
        if names:
            self.pdf.set_fallback_fonts(names)
        bold = ("resque-bold", "")
        return {
            "body": ("resque-regular", ""),
            "bold": bold,
            "mono": ("resque-mono", ""),
            "h1": bold,
            "h2": bold,
            "h3": bold,
        }

    def _unicode_ok(self) -> bool:
        return _unicode_fonts() is not None

    @staticmethod
    def _latin(text: str) -> str:
        return text.translate(_PDF_CHARS).encode("latin-1", errors="replace").decode("latin-1")

    def _line(self, text: str, style: str, gap: float = 1.35) -> None:
        family, face = self._faces[style]
        size = self.sizes[style]
        self.pdf.set_font(family, face, size)
        shown = text if self._unicode_ok() else self._latin(text)
        self.pdf.cell(0, size * gap, shown, new_x="LMARGIN", new_y="NEXT")

    def _skip(self, points: float) -> None:
        self.pdf.set_y(self.pdf.get_y() + points)

    def _chars(self, style: str) -> int:
        """Characters per line (monospace is 0.6 em wide; proportional about 0.5 on average)."""
        size = self.sizes[style]
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
                self._skip(6)
                self._wrapped(b.text, f"h{min(b.level, 3)}")
                if b.level == 1 and note:
                    self._wrapped(f"Note: {note}.", "bold")
            elif isinstance(b, _Para):
                self._wrapped("".join(b.spans), "bold" if b.lead else "body")
                self._skip(4)
            elif isinstance(b, _Bullets):
                for item in b.items:
                    self._wrapped(f"- {item}", "body", indent="  ")
                self._skip(4)
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
                self._skip(6)
            elif first_chart:
                first_chart = False
                self._wrapped(f"[{note or 'charts omitted'}; see the HTML export]", "body")
        return bytes(self.pdf.output())
