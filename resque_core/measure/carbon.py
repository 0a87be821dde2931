"""Carbon intensity of electricity (offline table) and the CO2 arithmetic.

CO2 [kg CO2e] = energy [kWh] x carbon intensity [g CO2e/kWh] x PUE / 1000
(:func:`resque_core.measure.units.co2_kg`, the one formula).

Intensities come from the tables codecarbon ships (no network):

- countries: ``codecarbon/data/private_infra/global_energy_mix.json``, field ``carbon_intensity``
  (g CO2e/kWh, annual average of the country's generation mix, with its ``year``);
- US states: ``codecarbon/data/private_infra/2023/usa_emissions.json`` (EPA eGRID 2023, lbs/MWh,
  converted here with 1 lb = 453.59237 g);
- Chinese provinces: ``codecarbon/data/private_infra/2023/china_provincial_emissions.json``
  (MEE/NBS 2023 factors, g CO2/kWh);
- no location: the world average of ``carbon_intensity_per_source.json`` (475 g/kWh, IEA 2019).

A user value (``override_g_per_kwh``) replaces the table. Every :class:`CarbonIntensity` carries
its source and a relative 1-sigma uncertainty (default :data:`DEFAULT_RELATIVE_UNCERTAINTY`) that
the cost model propagates into CO2 intervals.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._util import unknown_name_message
from ..errors import ConfigError
from .units import co2_kg as _co2_kg

__all__ = [
    "DEFAULT_RELATIVE_UNCERTAINTY",
    "CarbonIntensity",
    "carbon_intensity",
    "emissions_kg",
    "countries",
    "regions",
]

DEFAULT_RELATIVE_UNCERTAINTY = 0.10
"""1-sigma relative uncertainty of a table intensity: an annual average stands for the hours the
training actually ran, and grid mixes move by several percent from year to year; 10% covers that
drift, not the much larger gap between average and marginal emissions (not modelled)."""

_LB_IN_G = 453.59237
_REGIONAL = ("USA", "CHN")


@dataclass(frozen=True)
class CarbonIntensity:
    """Grams of CO2e per kWh drawn from the grid, where the figure comes from, and the PUE.

    ``location``: ISO-3 country, ``"USA/california"``-style region, ``"world"`` or ``"user"``.
    ``relative_uncertainty``: 1-sigma, as a fraction of ``g_per_kwh``. ``pue``: power usage
    effectiveness of the facility (>= 1; 1.0 = no overhead counted).
    """

    g_per_kwh: float
    source: str
    location: str
    year: int | None = None
    relative_uncertainty: float = DEFAULT_RELATIVE_UNCERTAINTY
    pue: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _data_dir() -> Path:
    import codecarbon

    return Path(codecarbon.__file__).resolve().parent / "data" / "private_infra"


@lru_cache(maxsize=1)
def _country_table() -> dict[str, dict[str, Any]]:
    with open(_data_dir() / "global_energy_mix.json", encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=1)
def _world_average() -> float:
    with open(_data_dir() / "carbon_intensity_per_source.json", encoding="utf-8") as f:
        return float(json.load(f)["world_average"])


@lru_cache(maxsize=1)
def _region_tables() -> dict[str, dict[str, tuple[float, str]]]:
    """{"USA": {name or code: (g/kWh, canonical name)}, "CHN": {...}} (lower-case keys)."""
    base = _data_dir() / "2023"
    with open(base / "usa_emissions.json", encoding="utf-8") as f:
        usa = json.load(f)
    with open(base / "china_provincial_emissions.json", encoding="utf-8") as f:
        chn = json.load(f)
    us: dict[str, tuple[float, str]] = {}
    for name, row in usa.items():
        if name.startswith("_"):
            continue
        value = float(row["emissions"]) * _LB_IN_G / 1000.0  # lbs/MWh -> g/kWh
        us[name.lower()] = (value, name)
        us[str(row["regionCode"]).lower()] = (value, name)
    cn: dict[str, tuple[float, str]] = {}
    for code, row in chn["data"].items():
        value = float(row["emission_factor"])
        for alias in (*row["names"], code.lower()):
            cn[alias.lower()] = (value, row["names"][0])
    return {"USA": us, "CHN": cn}


def countries() -> dict[str, str]:
    """ISO-3 code -> country name, for every country of the table (sorted by code)."""
    table = _country_table()
    return {code: table[code].get("country_name", code) for code in sorted(table)}


def regions(country: str) -> list[str]:
    """Region names with their own intensity in ``country`` (only USA and CHN have them)."""
    code = country.strip().upper()
    if code not in _REGIONAL:
        return []
    return sorted({name for _value, name in _region_tables()[code].values()})


def _check_fraction(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0 or value >= 1:
        raise ConfigError(f"{name} must be a fraction in [0, 1), got {value}")
    return float(value)


def carbon_intensity(
    *,
    country: str | None = None,
    region: str | None = None,
    override_g_per_kwh: float | None = None,
    pue: float = 1.0,
    relative_uncertainty: float = DEFAULT_RELATIVE_UNCERTAINTY,
) -> CarbonIntensity:
    """The intensity for a location (ISO-3 ``country``, optional ``region`` for USA / CHN), or the
    user's ``override_g_per_kwh``, or the world average when neither is given."""
    if not math.isfinite(pue) or pue < 1.0:
        raise ConfigError(f"PUE must be a number >= 1.0 (1.0 = no facility overhead), got {pue}")
    rel = _check_fraction("the relative uncertainty of the carbon intensity", relative_uncertainty)
    if override_g_per_kwh is not None:
        if not math.isfinite(override_g_per_kwh) or override_g_per_kwh < 0:
            raise ConfigError(
                f"carbon intensity must be a number of g CO2e/kWh >= 0, got {override_g_per_kwh}"
            )
        return CarbonIntensity(
            float(override_g_per_kwh), "user value", "user", None, rel, float(pue)
        )
    if country is None:
        if region is not None:
            raise ConfigError(f"region {region!r} needs a country (ISO-3 code, e.g. USA)")
        return CarbonIntensity(
            _world_average(),
            "world average, codecarbon carbon_intensity_per_source.json (IEA 2019)",
            "world",
            2019,
            rel,
            float(pue),
        )
    code = country.strip().upper()
    table = _country_table()
    if code not in table:
        raise ConfigError(unknown_name_message("country code (ISO-3)", country, table))
    if region is not None:
        if code not in _REGIONAL:
            raise ConfigError(
                f"no regional intensities for {code}: regions exist for USA and CHN only; "
                "drop the region or give the intensity yourself"
            )
        key = region.strip().lower()
        found = _region_tables()[code].get(key)
        if found is None:
            raise ConfigError(unknown_name_message(f"{code} region", region, regions(code)))
        value, name = found
        source = (
            "codecarbon 2023/usa_emissions.json (EPA eGRID 2023)"
            if code == "USA"
            else "codecarbon 2023/china_provincial_emissions.json (MEE/NBS 2023)"
        )
        return CarbonIntensity(value, source, f"{code}/{name}", 2023, rel, float(pue))
    row = table[code]
    return CarbonIntensity(
        float(row["carbon_intensity"]),
        f"codecarbon global_energy_mix.json ({row.get('country_name', code)})",
        code,
        int(row["year"]) if row.get("year") is not None else None,
        rel,
        float(pue),
    )


def emissions_kg(energy_kwh: float, intensity: CarbonIntensity) -> float:
    """kg CO2e of ``energy_kwh`` of IT energy: kWh x g/kWh x PUE / 1000."""
    return _co2_kg(energy_kwh, intensity.g_per_kwh, intensity.pue)
