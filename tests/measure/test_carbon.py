"""Carbon intensity look-ups (codecarbon's offline data, through its public data API) and the CO2
arithmetic."""

import json
import re
from pathlib import Path

import codecarbon
import pytest

from resque_core._util import unknown_name_message
from resque_core.errors import ConfigError
from resque_core.measure.carbon import (
    DEFAULT_RELATIVE_UNCERTAINTY,
    CarbonIntensity,
    carbon_intensity,
    countries,
    emissions_kg,
    regions,
)

DATA = Path(codecarbon.__file__).resolve().parent / "data" / "private_infra"


def test_country_comes_from_codecarbons_energy_mix_table():
    table = json.loads((DATA / "global_energy_mix.json").read_text(encoding="utf-8"))
    ci = carbon_intensity(country="fra")
    assert ci.g_per_kwh == table["FRA"]["carbon_intensity"]
    assert ci.year == table["FRA"]["year"]
    assert ci.location == "FRA"
    assert "global_energy_mix" in ci.source and "France" in ci.source
    assert ci.relative_uncertainty == DEFAULT_RELATIVE_UNCERTAINTY
    assert ci.pue == 1.0


def test_no_location_is_the_world_average():
    ci = carbon_intensity()
    assert (ci.g_per_kwh, ci.location, ci.year) == (475.0, "world", 2019)


def test_us_state_by_name_or_code_converts_lbs_per_mwh():
    usa = json.loads((DATA / "2023" / "usa_emissions.json").read_text(encoding="utf-8"))
    expected = usa["california"]["emissions"] * 453.59237 / 1000
    by_name = carbon_intensity(country="USA", region="California")
    by_code = carbon_intensity(country="USA", region="ca")
    assert by_name.g_per_kwh == pytest.approx(expected)
    assert by_code == by_name
    assert by_name.location == "USA/california" and "eGRID" in by_name.source


def test_values_unchanged_from_codecarbons_files():
    """DEU, USA/california and CHN/guangdong as read from codecarbon's data files before its
    data API was used (the files are the oracle here)."""
    mix = json.loads((DATA / "global_energy_mix.json").read_text(encoding="utf-8"))
    usa = json.loads((DATA / "2023" / "usa_emissions.json").read_text(encoding="utf-8"))
    chn = json.loads(
        (DATA / "2023" / "china_provincial_emissions.json").read_text(encoding="utf-8")
    )
    guangdong = next(r for r in chn["data"].values() if "guangdong" in r["names"])
    assert carbon_intensity(country="DEU").g_per_kwh == mix["DEU"]["carbon_intensity"] == 380.95
    assert carbon_intensity(country="USA", region="california").g_per_kwh == pytest.approx(
        usa["california"]["emissions"] * 453.59237 / 1000, rel=1e-12
    )
    ci = carbon_intensity(country="CHN", region="Guangdong")
    assert ci.g_per_kwh == guangdong["emission_factor"] == 441.9
    assert ci.location == "CHN/guangdong" and ci.year == 2023


def test_nordic_zone_and_canadian_province_are_accepted():
    se3 = carbon_intensity(country="SWE", region="se3")
    assert se3.location == "SWE/SE3" and se3.g_per_kwh == 27.0 and "nordic" in se3.source
    assert regions("NOR") == ["NO1", "NO2", "NO3", "NO4", "NO5"]
    # Canada's provinces come as a generation mix; codecarbon weighs coal, oil and gas.
    quebec, alberta = (carbon_intensity(country="CAN", region=r) for r in ("Quebec", "alberta"))
    assert quebec.location == "CAN/quebec" and 0 < quebec.g_per_kwh < 50 < alberta.g_per_kwh
    assert "ontario" in regions("can")
    with pytest.raises(ConfigError, match="closest: ontario"):
        carbon_intensity(country="CAN", region="ontaro")


def test_chinese_province():
    ci = carbon_intensity(country="CHN", region="sichuan")
    assert ci.g_per_kwh == 156.4 and ci.location == "CHN/sichuan"


def test_user_override_and_pue_in_the_co2_arithmetic():
    ci = carbon_intensity(override_g_per_kwh=100.0, pue=1.5, relative_uncertainty=0.0)
    assert ci == CarbonIntensity(100.0, "user value", "user", None, 0.0, 1.5)
    # 2 kWh x 100 g/kWh x 1.5 = 300 g
    assert emissions_kg(2.0, ci) == pytest.approx(0.3)
    assert emissions_kg(0.0, ci) == 0.0


def test_one_joules_per_kwh_constant_and_one_co2_formula():
    import numpy as np

    from resque_core.measure import units as units

    assert units.JOULES_PER_KWH == 3.6e6
    assert units.joules_to_kwh(7.2e6) == 2.0 and units.kwh_to_joules(0.5) == 1.8e6
    # 2 kWh x 300 g/kWh x PUE 1.5 = 900 g
    assert units.co2_kg(2.0, 300.0, 1.5) == pytest.approx(0.9)
    # the same arithmetic on Monte Carlo draws, element by element
    kwh, g = np.array([1.0, 2.0]), np.array([100.0, 300.0])
    draws = units.co2_kg(kwh, g, 1.2)
    assert draws.tolist() == [units.co2_kg(1.0, 100.0, 1.2), units.co2_kg(2.0, 300.0, 1.2)]
    assert draws.tolist() == pytest.approx([0.12, 0.72])
    ci = carbon_intensity(override_g_per_kwh=300.0, pue=1.5)
    assert emissions_kg(2.0, ci) == units.co2_kg(2.0, 300.0, 1.5)


def test_no_engine_module_keeps_its_own_joules_per_kwh():
    engine = Path(__file__).resolve().parents[2] / "resque_core"
    spellings = ("3.6e6", "3_600_000", "3600000", "3.6e+06")
    copies = [
        f"{path.name}: {word}"
        for path in sorted(engine.rglob("*.py"))
        if path.name != "units.py"
        for word in spellings
        if word in path.read_text(encoding="utf-8")
    ]
    assert copies == []


def test_listings():
    assert countries()["FRA"] == "France"
    assert "california" in regions("usa")
    assert regions("FRA") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pue": 0.9}, "PUE must be a number >= 1.0 (1.0 = no facility overhead), got 0.9"),
        (
            {"override_g_per_kwh": -1.0},
            "carbon intensity must be a number of g CO2e/kWh >= 0, got -1.0",
        ),
        (
            {"relative_uncertainty": 1.5},
            "the relative uncertainty of the carbon intensity must be a fraction in [0, 1), "
            "got 1.5",
        ),
        ({"region": "bavaria"}, "region 'bavaria' needs a country (ISO-3 code, e.g. USA)"),
        (
            {"country": "DEU", "region": "bavaria"},
            "no regional intensities for DEU: regions exist for USA, CAN, CHN, SWE, NOR, FIN "
            "only; "
            "drop the region or give the intensity yourself",
        ),
    ],
)
def test_bad_input_messages(kwargs, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        carbon_intensity(**kwargs)


def test_unknown_country_and_region_name_the_closest():
    with pytest.raises(ConfigError) as e:
        carbon_intensity(country="FRQ")
    assert str(e.value) == unknown_name_message("country code (ISO-3)", "FRQ", countries())
    with pytest.raises(ConfigError) as e:
        carbon_intensity(country="USA", region="californa")
    assert str(e.value) == unknown_name_message("USA region", "californa", regions("USA"))
    assert "closest: california" in str(e.value)
