"""measure: see docs/ARCHITECTURE.md."""

from .carbon import (
    DEFAULT_RELATIVE_UNCERTAINTY,
    CarbonIntensity,
    carbon_intensity,
    countries,
    emissions_kg,
    regions,
)
from .energy import (
    METERS,
    Basis,
    CodecarbonMeter,
    EnergyReading,
    Meter,
    NvmlMeter,
    ReplayMeter,
    make_meter,
)
from .units import GRAMS_PER_KG, JOULES_PER_KWH, co2_kg, joules_to_kwh, kwh_to_joules

__all__ = [
    "Basis",
    "CarbonIntensity",
    "CodecarbonMeter",
    "DEFAULT_RELATIVE_UNCERTAINTY",
    "EnergyReading",
    "GRAMS_PER_KG",
    "JOULES_PER_KWH",
    "METERS",
    "Meter",
    "NvmlMeter",
    "ReplayMeter",
    "carbon_intensity",
    "co2_kg",
    "emissions_kg",
    "countries",
    "joules_to_kwh",
    "kwh_to_joules",
    "make_meter",
    "regions",
]
