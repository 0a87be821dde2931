"""Settings page: the compat switch writes run.compat into the plan, and only when it is on."""

from apptools import no_problems, open_app, tiny_plan


def test_compat_switch_is_saved_into_the_plan(digits_checkpoint, digits_npz):
    at = open_app(tiny_plan(digits_checkpoint, digits_npz)).run()
    at = at.switch_page("pages/settings.py").run()
    assert at.toggle(key="set_compat_reference").value is False
    at.toggle(key="set_compat_reference").set_value(True).run()
    at.button(key="set_save").click().run()
    no_problems(at)
    assert at.session_state["plan"]["run"]["compat"] == "reference"
    at.toggle(key="set_compat_reference").set_value(False).run()
    at.button(key="set_save").click().run()
    no_problems(at)
    assert "compat" not in at.session_state["plan"]["run"]
