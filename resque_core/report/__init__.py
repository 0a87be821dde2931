"""report: see docs/ARCHITECTURE.md."""

from . import charts
from .blocks import calibration_line
from .charts import (
    KIND_TITLES,
    MEASURE_TITLES,
    class_heatmap,
    layer_sweep,
    predicted_vs_measured,
    ranking_bars,
    severity_lines,
    shift_preview,
    training_curves,
)
from .export import (
    FORMATS,
    Export,
    ReportFormat,
    export_run,
    import_run,
    load_run,
    render,
)
from .lead import decision
from .pdf import find_chromium

__all__ = [
    "Export",
    "FORMATS",
    "KIND_TITLES",
    "MEASURE_TITLES",
    "ReportFormat",
    "calibration_line",
    "charts",
    "class_heatmap",
    "decision",
    "export_run",
    "find_chromium",
    "import_run",
    "layer_sweep",
    "load_run",
    "predicted_vs_measured",
    "ranking_bars",
    "render",
    "severity_lines",
    "shift_preview",
    "training_curves",
]
