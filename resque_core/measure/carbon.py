"""Carbon intensity of electricity (offline tables) and the CO2 arithmetic.

CO2 [kg CO2e] = energy [kWh] x carbon intensity [g CO2e/kWh] x PUE / 1000
(:func:`resque_core.measure.units.co2_kg`, the one formula).

Intensities come from the tables codecarbon ships, read through its public data API
(``codecarbon.input.DataSource``, no network), and regional figures are computed by codecarbon
itself (``codecarbon.core.emissions.Emissions.get_region_emissions`` for one kWh):

- countries: the global energy mix (``get_global_energy_mix_data``), field ``carbon_intensity``
  (g CO2e/kWh, annual average of the country's generation mix, with its ``year``);
- US states: EPA eGRID 2023 (``get_country_emissions_data("usa")``, lbs/MWh);
- Canadian provinces: their 2023 generation mix (``get_country_energy_mix_data("can")``),
  turned into g/kWh by codecarbon's emission factors for coal, oil and gas;
- Chinese provinces: MEE/NBS 2023 factors (``get_china_provincial_emissions_data``);
- Nordic bidding zones (SWE SE1-SE4, NOR NO1-NO5, FIN FI):
  ``get_nordic_country_energy_mix_data`` (g CO2e/kWh);
- no location: the world average of ``get_carbon_intensity_per_source_data`` (475 g/kWh,
  IEA 2019).

A region is matched by name or code (case-insensitive) against these tables before codecarbon is
asked, so an unknown one is an error naming the closest, never a silent country average. A user
value (``override_g_per_kwh``) replaces the table. Every :class:`CarbonIntensity` carries its
source and a relative 1-sigma uncertainty (default :data:`DEFAULT_RELATIVE_UNCERTAINTY`) that
the cost model propagates into CO2 intervals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
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


@lru_cache(maxsize=1)
def _source() -> Any:
    from codecarbon.input import DataSource

    return DataSource()


@lru_cache(maxsize=1)
def _country_table() -> dict[str, dict[str, Any]]:
    return _source().get_global_energy_mix_data()


@lru_cache(maxsize=1)
def _world_average() -> float:
    return float(_source().get_carbon_intensity_per_source_data()["world_average"])


# Where each country's regional figures come from (the source named in CarbonIntensity).
_REGION_SOURCES = {
    "USA": ("codecarbon usa_emissions (EPA eGRID 2023)", 2023),
    "CAN": ("codecarbon canada_energy_mix (2023 provincial generation mix)", 2023),
    "CHN": ("codecarbon china_provincial_emissions (MEE/NBS 2023)", 2023),
    "SWE": ("codecarbon nordic_energy_mix (bidding zones)", None),
    "NOR": ("codecarbon nordic_energy_mix (bidding zones)", None),
    "FIN": ("codecarbon nordic_energy_mix (bidding zones)", None),
}
_REGIONAL = tuple(_REGION_SOURCES)
_NORDIC_PREFIX = {"SE": "SWE", "NO": "NOR", "FI": "FIN"}


@lru_cache(maxsize=1)
def _region_tables() -> dict[str, dict[str, tuple[str, int | None]]]:
    """{country: {name or code (lower case): (codecarbon's region name, year)}}."""
    source = _source()
    us: dict[str, tuple[str, int | None]] = {}
    for name, row in source.get_country_emissions_data("usa").items():
        if not name.startswith("_"):
            us[name.lower()] = us[str(row["regionCode"]).lower()] = (name, 2023)
    ca = {name.lower(): (name, 2023) for name in source.get_country_energy_mix_data("can")}
    cn: dict[str, tuple[str, int | None]] = {}
    for code, row in source.get_china_provincial_emissions_data()["data"].items():
        for alias in (*row["names"], code.lower()):
            cn[alias.lower()] = (row["names"][0], int(row.get("year") or 2023))
    tables: dict[str, dict[str, tuple[str, int | None]]] = {"USA": us, "CAN": ca, "CHN": cn}
    for zone, row in source.get_nordic_country_energy_mix_data()["data"].items():
        country = _NORDIC_PREFIX.get(zone[:2].upper())
        if country is not None:
            year = int(row["year"]) if row.get("year") is not None else None
            tables.setdefault(country, {})[zone.lower()] = (zone, year)
    return tables


@lru_cache(maxsize=256)
def _regional_g_per_kwh(country: str, region: str) -> float:
    """codecarbon's emissions for one kWh drawn in ``region`` of ``country``, in g CO2e/kWh."""
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata

    geo = GeoMetadata(country_iso_code=country, region=region)
    kg = Emissions(_source()).get_region_emissions(Energy.from_energy(kWh=1.0), geo)
    return float(kg) * 1000.0


def countries() -> dict[str, str]:
    """ISO-3 code -> country name, for every country of the table (sorted by code)."""
    table = _country_table()
    return {code: table[code].get("country_name", code) for code in sorted(table)}


def regions(country: str) -> list[str]:
    """Region names with their own intensity in ``country`` (USA, CAN, CHN, SWE, NOR, FIN)."""
    code = country.strip().upper()
    if code not in _REGIONAL:
        return []
    return sorted({name for name, _year in _region_tables()[code].values()})


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
            "world average, codecarbon carbon_intensity_per_source (IEA 2019)",
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
                f"no regional intensities for {code}: regions exist for "
                f"{', '.join(_REGIONAL)} only; drop the region or give the intensity yourself"
            )
        found = _region_tables()[code].get(region.strip().lower())
        if found is None:
            raise ConfigError(unknown_name_message(f"{code} region", region, regions(code)))
        name, year = found
        source, _ = _REGION_SOURCES[code]
        value = _regional_g_per_kwh(code, name)
        return CarbonIntensity(value, source, f"{code}/{name}", year, rel, float(pue))
    row = table[code]
    return CarbonIntensity(
        float(row["carbon_intensity"]),
        f"codecarbon global_energy_mix ({row.get('country_name', code)})",
        code,
        int(row["year"]) if row.get("year") is not None else None,
        rel,
        float(pue),
    )


def emissions_kg(energy_kwh: float, intensity: CarbonIntensity) -> float:
    """kg CO2e of ``energy_kwh`` of IT energy: kWh x g/kWh x PUE / 1000."""
    return _co2_kg(energy_kwh, intensity.g_per_kwh, intensity.pue)
