"""The text-only PDF (no browser to print the HTML): written with fpdf2 in an embedded Unicode
font, so a label in a non-Latin script prints as written instead of as '?'."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pypdf
import pytest

from resque_core import report
from resque_core.report import pdf as pdf_mod

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "ranking-kwh-cee0db6.json"
LABEL = "Кошка γάτα"  # Cyrillic and Greek: outside Latin-1


def _text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def doc():
    run = copy.deepcopy(json.loads(RUN.read_text(encoding="utf-8")))
    run["candidates"][0]["label"] = LABEL
    return run


@pytest.mark.skipif(pdf_mod._unicode_fonts() is None, reason="no TrueType font on this machine")
def test_fallback_pdf_prints_a_non_latin_label(doc, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    data = report.render(doc, "pdf")
    assert data.startswith(b"%PDF")
    text = _text(data)
    assert LABEL in text and "????" not in text
    assert "Note: charts omitted: no Chromium found for static rendering." in text


def test_without_a_truetype_font_the_core_fonts_replace_what_latin1_lacks(
    doc, tmp_path, monkeypatch
):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    monkeypatch.setattr(pdf_mod, "_unicode_fonts", lambda: None)
    text = _text(report.render(doc, "pdf"))
    assert LABEL not in text and "????? ????" in text
    assert "Note: charts omitted" in text
