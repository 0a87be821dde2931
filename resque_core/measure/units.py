"""Energy and emission units: the one joules-per-kWh constant and the one CO2 formula.

CO2 [kg CO2e] = energy [kWh] x carbon intensity [g CO2e/kWh] x PUE / 1000 [g/kg]. Every engine
module that turns joules into kWh or kWh into kg CO2e calls these, so a figure computed in
retraining, in the cost model's Monte Carlo and in a report is the same arithmetic, in the same
order (bit for bit). The functions work on floats and, element by element, on numpy arrays.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

__all__ = ["GRAMS_PER_KG", "JOULES_PER_KWH", "co2_kg", "joules_to_kwh", "kwh_to_joules"]

JOULES_PER_KWH = 3.6e6
"""1 kWh = 1000 W x 3600 s."""
GRAMS_PER_KG = 1000.0

Quantity = TypeVar("Quantity", float, np.ndarray)


def joules_to_kwh(joules: Quantity) -> Quantity:
    """Energy in J -> kWh."""
    return joules / JOULES_PER_KWH


def kwh_to_joules(kwh: Quantity) -> Quantity:
    """Energy in kWh -> J."""
    return kwh * JOULES_PER_KWH


def co2_kg(energy_kwh: Quantity, g_per_kwh: Quantity, pue: float) -> Quantity:
    """kg CO2e of ``energy_kwh`` of IT energy at ``g_per_kwh`` (g CO2e/kWh of grid electricity)
    in a facility with power usage effectiveness ``pue`` (>= 1: total / IT energy)."""
    return energy_kwh * g_per_kwh * pue / GRAMS_PER_KG
