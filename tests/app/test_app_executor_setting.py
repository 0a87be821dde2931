"""Settings page: the executor of the session's jobs (local by default; ray with an address)."""

from apptools import no_problems, open_app, tiny_plan

from ui import state


def _settings_page(plan):
    at = open_app(plan).run()
    return at.switch_page("pages/settings.py").run()


def test_local_is_the_default_and_needs_no_ray(digits_checkpoint, digits_npz):
    at = _settings_page(tiny_plan(digits_checkpoint, digits_npz))
    no_problems(at)
    assert at.radio(key="set_executor").value == "local"
    assert at.text_input(key="set_ray_address").disabled
    at.button(key="set_executor_save").click().run()
    no_problems(at)
    assert any("local (this process)" in s.value for s in at.success)
    assert at.session_state["executor_choice"] == ("local", None)


def test_choosing_ray_passes_the_address_and_keeps_the_choice(
    digits_checkpoint, digits_npz, monkeypatch
):
    calls = []

    class Chosen:
        def __init__(self, name, address):
            calls.append((name, address))

        def describe(self):
            return "ray (10.0.0.5:6379: 4 GPU workers (1 GPU each))"

    monkeypatch.setattr(state, "make_executor", lambda name, address=None: Chosen(name, address))
    at = _settings_page(tiny_plan(digits_checkpoint, digits_npz))
    at.radio(key="set_executor").set_value("ray").run()
    assert not at.text_input(key="set_ray_address").disabled
    at.text_input(key="set_ray_address").set_value(" 10.0.0.5:6379 ").run()
    at.button(key="set_executor_save").click().run()
    no_problems(at)
    assert calls == [("ray", "10.0.0.5:6379")]
    assert at.session_state["executor_choice"] == ("ray", "10.0.0.5:6379")
    assert any("4 GPU workers" in s.value for s in at.success)
