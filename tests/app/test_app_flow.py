"""The main flow end to end on tiny data, and two browser sessions that do not interfere."""

from pathlib import Path

from apptools import finish_jobs, no_problems, open_app, table, tiny_plan


def test_checkpoint_then_candidates_then_ranking(digits_checkpoint, digits_npz, task_npz):
    at = open_app().run()
    # Leave the demo at once: no demo job keeps running in the background of this test.
    for job in at.session_state["rank_jobs"].values():
        job.cancel()
    at.button(key="start_new").click().run()
    no_problems(at)
    assert at.title[0].value == "Checkpoint"

    # 1. the checkpoint, uploaded
    at.file_uploader(key="ckpt_upload").upload("digits.pt", Path(digits_checkpoint).read_bytes())
    at.selectbox(key="ckpt_arch").set_value("small_cnn")
    at.number_input(key="ckpt_in_channels").set_value(1)
    at.text_input(key="ckpt_image_size").set_value("8").run()
    at.button(key="ckpt_apply").click().run()
    no_problems(at)

    # 2. the source data (a path on the server), two shifts and an uploaded task
    at.switch_page("pages/candidates.py").run()
    at.radio(key="cand_source_how").set_value("Path on the server").run()
    at.text_input(key="cand_source_path").set_value(digits_npz).run()
    at.button(key="cand_source_set").click().run()
    no_problems(at)
    at.selectbox(key="cand_shift").set_value("gaussian_noise")
    at.multiselect(key="cand_severities").set_value([5, 1]).run()
    at.button(key="cand_add_shift").click().run()
    at.radio(key="cand_task_how").set_value("Upload").run()
    at.file_uploader(key="cand_task_upload").upload("letters.npz", task_npz)
    at.text_input(key="cand_task_label").set_value("Letters A-C").run()
    at.button(key="cand_add_task").click().run()
    no_problems(at)

    # Sampling kept small so the ranking takes a moment.
    at.switch_page("pages/settings.py").run()
    at.toggle(key="set_all_samples").set_value(False).run()
    at.number_input(key="set_samples_per_class").set_value(10)
    at.button(key="set_save").click().run()

    # 3. compute: the table holds every candidate in rank order
    at.switch_page("pages/ranking.py").run()
    finish_jobs(at)
    no_problems(at)
    rows = table(at, "RESQUE")
    assert list(rows["id"]) == ["gaussian_noise-1", "gaussian_noise-5", "Letters-A-C"]
    assert list(rows["kind"]) == ["distribution shift", "distribution shift", "new task"]
    assert list(rows["rank"]) == [1, 2, 1]
    assert rows["RESQUE"][0] < rows["RESQUE"][1]
    model = at.session_state["plan"]["model"]
    assert model["arch"] == "small_cnn" and model["num_classes"] == 10  # read from the file


def test_two_sessions_keep_their_own_plans(digits_checkpoint, digits_npz):
    one = open_app(tiny_plan(digits_checkpoint, digits_npz)).run()
    two = open_app(tiny_plan(digits_checkpoint, digits_npz)).run()
    finish_jobs(one)
    finish_jobs(two)
    one.switch_page("pages/candidates.py").run()
    one.button(key="cand_remove_all").click().run()
    two.switch_page("pages/candidates.py").run()
    no_problems(two)
    assert one.session_state["plan"]["candidates"] == []
    assert len(two.session_state["plan"]["candidates"]) == 3
