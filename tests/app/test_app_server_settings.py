"""Settings page, server part: the data roots and upload caps, and what changing them does."""

from __future__ import annotations

import os

from apptools import no_problems, open_app, table, tiny_plan

from resque_core.store import server_settings


def _settings(monkeypatch, *, fixed: bool, address: str = "127.0.0.1"):
    import streamlit

    monkeypatch.setattr(streamlit, "get_option", _with_address(streamlit.get_option, address))
    if not fixed:
        monkeypatch.delenv("RESQUE_DATA_ROOTS", raising=False)
    at = open_app(tiny_plan("", "", candidates=[]))
    at.switch_page("pages/settings.py")
    return at.run()


def _with_address(get_option, address):
    return lambda name: address if name == "server.address" else get_option(name)


def test_roots_and_caps_are_saved_and_apply_at_once(monkeypatch, tmp_path):
    at = _settings(monkeypatch, fixed=False)
    no_problems(at)
    cache = os.environ["RESQUE_CACHE_DIR"]
    rows = table(at, "data root")
    assert list(rows["data root"]) == [os.path.join(cache, "data")]  # the default, created
    assert list(rows["exists"]) == [True]
    (tmp_path / "shared" / "cats").mkdir(parents=True)
    at.text_area(key="set_roots").set_value(str(tmp_path / "shared"))
    at.number_input(key="set_max_upload_mb").set_value(5)
    at.run()
    at.button(key="set_server_save").click().run()
    no_problems(at)
    assert at.success[0].value.startswith("Saved: the new roots and caps apply now.")
    saved = server_settings(cache)
    assert saved.roots == (tmp_path / "shared",) and saved.max_upload_bytes == 5 * 2**20
    assert list(table(at, "data root")["data sets and model files"]) == [1]


def test_roots_set_by_the_environment_cannot_be_changed_here(monkeypatch, data_roots):
    at = _settings(monkeypatch, fixed=True)
    no_problems(at)
    assert list(table(at, "data root")["data root"]) == data_roots
    assert any("fixed by RESQUE_DATA_ROOTS" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "set_server_save"]


def test_a_server_others_can_reach_keeps_its_roots_out_of_the_browser(monkeypatch):
    at = _settings(monkeypatch, fixed=False, address="0.0.0.0")
    no_problems(at)
    assert any("listens beyond this machine" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "set_server_save"]
    assert not [t for t in at.text_area if t.key == "set_roots"]
