"""A calibration line reads as arithmetic: a negative slope is subtracted."""

from resque_core.report import calibration_line


def test_calibration_line_signs():
    assert calibration_line(23.5, -56.27) == "23.50 - 56.27 x RESQUE"
    assert calibration_line(1.875, 2.56, times="×") == "1.88 + 2.56 × RESQUE"
