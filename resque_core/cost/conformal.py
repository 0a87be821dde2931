"""Prediction intervals from leave-one-out residuals.

With ``n`` measured runs and their LOO absolute residuals ``r_1 <= ... <= r_n`` (each run
predicted by the fit on the others), the jackknife / split-conformal half-width at level ``L``
is ``r_(m)`` with ``m = ceil((n + 1) L)``: a new candidate exchangeable with the measured ones
falls within ``prediction +/- r_(m)`` with probability at least ``L``. That needs ``m <= n``
(n >= 4 at 80 %). With fewer runs no distribution-free bound exists; the half-width is then the
larger of the largest residual and a t-based one, ``t(n-1, (1+L)/2) x RMSE_LOO x sqrt(1 +
1/n)``, and the interval says so (``method``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from ..errors import ConfigError

__all__ = ["ConformalBand", "conformal_band"]


class ConformalBand(dict):
    """``{"half_width", "level", "n", "method"}``: a plain dict, stored as it is."""


def conformal_band(residuals: Sequence[float], level: float) -> ConformalBand:
    """Half-width of a ``level`` prediction interval from LOO absolute ``residuals``."""
    if not 0 < level < 1:
        raise ConfigError(f"interval level must be in (0, 1), got {level}")
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    n = len(r)
    if n == 0:
        raise ConfigError("an interval needs at least one leave-one-out residual")
    m = math.ceil((n + 1) * level)
    if m <= n:
        return ConformalBand(half_width=float(r[m - 1]), level=level, n=n, method="conformal")
    rmse = float(np.sqrt(np.mean(r**2)))
    t = float(stats.t.ppf(0.5 + level / 2, max(n - 1, 1)))
    half = max(float(r[-1]), t * rmse * math.sqrt(1 + 1 / n))
    return ConformalBand(half_width=half, level=level, n=n, method="t (too few runs for conformal)")
