"""The data room's lazy export table names exactly each module's public names."""

import importlib

import resque_core.data as room


def test_the_export_table_matches_every_modules_all():
    for module, names in room._EXPORTS.items():
        mod = importlib.import_module(f"resque_core.data.{module}")
        assert sorted(names) == sorted(mod.__all__), module
    for name in room.__all__:
        assert getattr(room, name) is not None
