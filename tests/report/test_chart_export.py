"""Charts as PNG / SVG through kaleido (a headless Chromium; nothing fetched)."""

from __future__ import annotations

import shutil

import pytest

from resque_core.errors import ConfigError, ResqueError
from resque_core.report.charts import export_figure, layer_sweep

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="kaleido needs a Chromium"
)


@needs_chromium
@pytest.mark.slow  # a Chromium starts per image: seconds each
def test_a_chart_exports_as_svg_and_png():
    fig = layer_sweep([("layer1", 0.12), ("layer2", 0.34), ("layer3.0.conv1", None)])
    svg = export_figure(fig, "svg", width=400, height=300)
    assert svg.lstrip().startswith(b"<svg") and b"layer3.0.conv1" in svg
    png = export_figure(fig, "png", width=200, height=150, scale=1)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # width x height from the IHDR chunk
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (200, 150)


def test_unknown_format_and_missing_browser_are_the_projects_errors(tmp_path, monkeypatch):
    fig = layer_sweep([("a", 0.1)])
    with pytest.raises(ConfigError, match=r"^unknown image format 'jpg'; allowed: png, svg$"):
        export_figure(fig, "jpg")
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ResqueError, match="cannot draw the chart as SVG"):
        export_figure(fig, "svg")
