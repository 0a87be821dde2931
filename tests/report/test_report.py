"""Reports: every format of a stored ranking and validation run, the JSON round trip, the CSV
table in rank order, the PDF with and without a browser to print it, and the report command.

The runs are built from the engine's own result classes (no forward pass, no training), so
their documents have exactly the shape that rank_plan and validate_plan store.
"""

import copy
import csv
import io
import json
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pypdf
import pytest

from resque_core import report
from resque_core.cli import main
from resque_core.cost.predict import PRIORS, CostSettings, predict_cost
from resque_core.errors import ConfigError
from resque_core.measure.carbon import carbon_intensity
from resque_core.plans import DEMO_PLAN, Candidate, load_plan
from resque_core.ranking import COST_ORDERINGS, CandidateResult, Ranking
from resque_core.report import charts as charts
from resque_core.retrain import EnergyProbe, EpochRecord, RetrainConfig, RetrainResult
from resque_core.scoring.scorer import Score
from resque_core.store.runs import RunStore
from resque_core.validation import Validation, ValidationRun, correlations

EVIL = '<script>alert(1)</script> & <a href="http://evil.example/x">click</a> | *x*'
# runs stored by the engine itself
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
REPLAY = "replay (fixed 30 W x wall time; not a measurement)"
# id -> (RESQUE, per-class values); "missing" fails
VALUES = {
    "noise-1": (0.03, {"0": 0.02, "1": 0.04}),
    "noise-5": (0.06, {"0": 0.05, "1": 0.07}),
    "blur-3": (0.21, {"0": 0.2, "1": 0.22}),
    "parity": (0.10, {"even": 0.08, "odd": 0.12}),
    "letters": (0.65, {"A": 0.6, "B": 0.7}),
}


@pytest.fixture(scope="module")
def plan():
    demo = load_plan(DEMO_PLAN)
    return replace(
        demo,
        name="tiny report",
        run=replace(demo.run, samples_per_class=20, device="cpu"),
        candidates=(
            Candidate("noise-1", "shift", shift="gaussian_noise:1"),
            Candidate("noise-5", "shift", shift="gaussian_noise:5", label=EVIL),
            Candidate("blur-3", "shift", shift="gaussian_blur:3"),
            Candidate("parity", "task", data="builtin:digits-parity"),
            Candidate("letters", "task", data="builtin:letters"),
            Candidate("missing", "task", data="/nonexistent/x.npz"),
        ),
    )


@pytest.fixture(scope="module")
def settings():
    return CostSettings(carbon_intensity(override_g_per_kwh=300.0), draws=2000)


def _probe(joules: float) -> EnergyProbe:
    return EnergyProbe(joules, joules * 0.05, 2.0, 45, 1, 15, 3, REPLAY, "replay")


def _ranking(plan, settings, ordered_by: str) -> dict:
    results = []
    for c in plan.candidates:
        if c.id not in VALUES:
            results.append(CandidateResult(c, error="data not found: /nonexistent/x.npz"))
            continue
        value, per_class = VALUES[c.id]
        score = Score(
            c.estimator,
            value,
            per_class,
            "features.conv3",
            200,
            200,
            0.1,
            0.1,
            False,
            "cpu",
            "fp32",
            f"key-{c.id}",
        )
        prediction = None
        if ordered_by in COST_ORDERINGS:
            prediction = predict_cost(
                value, calibration=PRIORS[c.estimator], probe=_probe(60.0), settings=settings
            )
        results.append(CandidateResult(c, score=score, prediction=prediction))
    cost = None
    if ordered_by in COST_ORDERINGS:
        cost = {
            "intensity": settings.intensity.to_dict(),
            "level": settings.level,
            "max_kwh": None,
            "max_co2_kg": None,
            "calibration_basis": {"dist": "prior", "task": "prior"},
        }
    ranking = Ranking(plan, results, 1.5, ordered_by=ordered_by, cost=cost)
    counters: dict[str, int] = {}
    for r in ranking.ordered:
        if r.ok:
            kind = "all" if ordered_by in COST_ORDERINGS else r.candidate.estimator
            counters[kind] = counters.get(kind, 0) + 1
            r.rank = counters[kind]
    return ranking.to_dict()


def _validation(plan, settings) -> dict:
    config = RetrainConfig(device="cpu", max_epochs=5, augment="none")
    runs = []
    for cid, epochs in (("noise-1", 1), ("blur-3", 3), ("noise-5", 2), ("parity", 2)):
        c = plan.candidate(cid)
        value = VALUES[cid][0]
        records = [
            EpochRecord(e, 0.9, 0.3, 0.85, 0.4, 1.5, 1.2, 0.01 * e, 0.01, 2.0, 2e-5, 6e-6, 1e-3)
            for e in range(1, epochs + 1)
        ]
        result = RetrainResult(
            "completed",
            "target accuracy 0.9 reached",
            True,
            config,
            records,
            0.5,
            1.2,
            120,
            30,
            10,
            c.estimator == "task",
            "cpu",
            REPLAY,
            "replay",
            settings.intensity,
        )
        probe = _probe(72.0)
        prediction = predict_cost(
            value, calibration=PRIORS[c.estimator], probe=probe, settings=settings
        )
        runs.append(ValidationRun(c, value, prediction, probe, result))
    runs.append(ValidationRun(plan.candidate("letters"), 0.65, error="out of memory"))
    return Validation(
        plan,
        runs,
        correlations([r.to_dict() for r in runs]),
        dict(PRIORS),
        "calibration-key",
        "ab" * 32,
        config,
        settings,
        4.0,
    ).to_dict()


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "cache")


@pytest.fixture(scope="module")
def kwh_doc(plan, settings):
    return _ranking(plan, settings, "kwh")


@pytest.fixture(scope="module")
def resque_doc(plan, settings):
    return _ranking(plan, settings, "resque")


@pytest.fixture(scope="module")
def validation_doc(plan, settings):
    return _validation(plan, settings)


@pytest.fixture
def kwh_run(store, kwh_doc):
    """The kWh-ordered ranking as stored and loaded back: (run id, stored document)."""
    run_id = store.save(kwh_doc)
    return run_id, store.load(run_id)


# ----------------------------------------------------------------------------- decision
def test_decision_names_the_cheapest_by_the_runs_ordering(kwh_doc):
    best = kwh_doc["candidates"][0]
    assert best["id"] == "noise-1" and best["rank"] == 1  # lowest RESQUE -> least energy
    p = best["predicted"]
    lo, hi = p["energy_kwh_interval"]
    text = report.decision(kwh_doc)
    assert text.startswith("Reuse gaussian_noise:1 (noise-1) first: it has the lowest predicted ")
    assert "energy of the 5 candidates with a cost prediction" in text
    assert f"{p['energy_kwh']:.3g} [{lo:.3g}, {hi:.3g}] kWh" in text
    assert "kg CO2e" in text and "80 % intervals" in text


def test_decision_ranks_each_kind_on_its_own_without_a_cost_model(resque_doc):
    text = report.decision(resque_doc)
    assert "gaussian_noise:1 (noise-1) among 3 distribution shifts (RESQUE_dist 0.0300)" in text
    assert "builtin:digits-parity (parity) among 2 new tasks (RESQUE_task 0.1000)" in text
    assert "kWh" not in text


def test_how_sure_compares_with_the_runner_up_and_names_the_prior(kwh_doc, resque_doc):
    md = report.render(kwh_doc, "md").decode()
    sure = next(line for line in md.splitlines() if line.startswith("How sure: "))
    assert "runner-up" in sure and "documented prior" in sure
    assert "overlap" in sure  # the prior's wide intervals cannot separate the two best
    md = report.render(resque_doc, "md").decode()
    sure = next(line for line in md.splitlines() if line.startswith("How sure: "))
    assert "RESQUE has no interval" in sure


def test_how_sure_with_a_local_calibration_and_separate_intervals(kwh_doc):
    candidates = []
    for i, c in enumerate(kwh_doc["candidates"]):
        if c.get("predicted"):
            cal = {**c["predicted"]["calibration"], "basis": "calibrated", "n": 5, "loo_mae": 0.8}
            interval = [1e-6 * (2 * i + 1), 1e-6 * (2 * i + 2)]  # disjoint, in rank order
            c = {**c, "predicted": {**c["predicted"], "calibration": cal}}
            c["predicted"]["energy_kwh_interval"] = interval
        candidates.append(c)
    doc = {**kwh_doc, "candidates": candidates}
    sure = next(ln for ln in report.render(doc, "md").decode().splitlines() if "How sure" in ln)
    assert "gaussian_noise:1 is clearly ahead of the runner-up " in sure
    assert "the two intervals do not overlap" in sure
    assert (
        "epochs for RESQUE_dist come from a calibration on 5 local retrains, leave-one-out " in sure
    )
    assert "prior" not in sure


@pytest.mark.parametrize("case", ["all failed", "nothing scored", "predictions failed"])
def test_runs_without_a_decision_still_render(kwh_doc, validation_doc, case, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "none"))
    failed = [c for c in kwh_doc["candidates"] if c["status"] != "ok"]
    if case == "all failed":
        doc = {**kwh_doc, "candidates": failed}
        expected = "No candidate was scored, so this run supports no reuse decision; the "
    elif case == "nothing scored":
        doc = {**kwh_doc, "candidates": [], "cancelled": True}
        expected = "No candidate was scored, so this run supports no reuse decision."
    else:
        doc = {
            **kwh_doc,
            "candidates": [
                {**{k: v for k, v in c.items() if k != "predicted"}, "prediction_error": "boom"}
                for c in kwh_doc["candidates"]
            ],
        }
        expected = "Cheapest to reuse: gaussian_noise:1 (noise-1) among 3 distribution shifts"
    assert report.decision(doc).startswith(expected)
    for fmt in report.FORMATS:
        assert report.render(doc, fmt)
    if case == "predictions failed":
        assert "noise-1): cost prediction failed: boom" in report.render(doc, "md").decode()
    runs = [{**r, "epochs": None, "status": "failed"} for r in validation_doc["runs"]]
    doc = {**validation_doc, "runs": runs}
    assert report.decision(doc).startswith("No candidate finished retraining (5 failures)")
    for fmt in report.FORMATS:
        assert report.render(doc, fmt)


def test_validation_decision_counts_measurements_inside_the_intervals(validation_doc):
    text = report.decision(validation_doc)
    assert text.startswith("Of 4 retrained candidates, gaussian_noise:1 (noise-1) was cheapest")
    measured = [r for r in validation_doc["runs"] if r["epochs"] is not None]
    inside = sum(
        r["predicted"]["epochs_interval"][0] <= r["epochs"] <= r["predicted"]["epochs_interval"][1]
        for r in measured
    )
    assert f"{inside} of 4 measured epoch counts" in text


# ----------------------------------------------------------------------------- HTML
class _Refs(HTMLParser):
    """Every attribute that can load something, and the charts' divs."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.scripts = 0
        self.charts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        for name, value in attrs:
            if name in ("src", "href", "action", "data", "poster", "srcset") and value:
                self.refs.append((tag, name, value))
            if name == "class" and value and "plotly-graph-div" in value:
                self.charts += 1


def test_html_is_self_contained_with_one_plotly_copy(kwh_run):
    _, doc = kwh_run
    page = report.render(doc, "html")
    assert len(page) < 6 * 2**20
    text = page.decode()
    parsed = _Refs()
    parsed.feed(text)
    assert parsed.refs == []  # no <script src>, <link href>, <img src>: nothing to fetch
    assert not re.search(r"url\(\s*['\"]?https?:", text)
    assert text.count("* plotly.js v") == 1
    # one script for plotly.js, one per chart: bars, severity, per-class dist and task
    assert parsed.charts == 4 and parsed.scripts == 5
    assert text.count("Content-Security-Policy") == 1 and "default-src 'none'" in text
    assert report.render(doc, "html") == page  # reproducible: no random ids or clock


def test_html_escapes_user_strings(kwh_run):
    text = report.render(kwh_run[1], "html").decode()
    assert "<script>alert(1)" not in text and 'evil.example/x">' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;a href=&quot;http://evil" in text
    # the charts get the label escaped too (Plotly renders a subset of HTML, links included)
    assert "\\u003cscript\\u003ealert" not in text and '<a href=\\"http://evil' not in text


def _chart_data(page: str) -> list[list[dict]]:
    """The traces of every chart of an HTML report (the data argument of Plotly.newPlot)."""
    decoder = json.JSONDecoder()
    return [
        decoder.raw_decode(page, m.end())[0]
        for m in re.finditer(r'Plotly\.newPlot\(\s*"chart-\d+",\s*', page)
    ]


def test_chart_text_is_escaped_exactly_once(kwh_doc):
    # Plotly decodes &lt; &gt; &amp; once when it draws, so once-escaped text shows as typed.
    doc = copy.deepcopy(kwh_doc)
    first = doc["candidates"][0]
    first.update(label="x<b>y", id="i<d>")
    first["score"]["per_class"] = {"<i>c</i>": 0.1}
    page = report.render(doc, "html").decode()
    bars, _severity, heat_dist, _heat_task = _chart_data(page)
    assert bars[0]["y"][0] == "1. x&lt;b&gt;y"
    assert bars[0]["customdata"][0] == ["i&lt;d&gt;"]
    assert (
        heat_dist[0]["y"][0] == "1. x&lt;b&gt;y" and heat_dist[0]["x"][0] == "&lt;i&gt;c&lt;/i&gt;"
    )
    assert "&amp;lt;" not in page and "&amp;gt;" not in page
    assert "x&lt;b&gt;y" in page.split("Plotly.newPlot", 1)[0]  # the table: escaped once too


def test_a_stored_runs_labels_reach_the_charts_escaped_once():
    doc = json.loads((FIXTURES / "ranking-kwh-cbc6ee8.json").read_text(encoding="utf-8"))
    assert doc["candidates"][3]["label"] == "Blur <b>3</b> & co"
    page = report.render(doc, "html").decode()
    labels = [y for trace in _chart_data(page)[0] for y in trace["y"]]
    assert "4. Blur &lt;b&gt;3&lt;/b&gt; &amp; co" in labels
    assert "&amp;lt;" not in page and "&amp;amp;" not in page


REPLAY_CAVEAT = "Some energy figures come from the replay meter: they are not measurements."
ESTIMATE_CAVEAT = "Some energy figures are codecarbon estimates (no hardware counter)"
PRIOR_CAVEAT = "Some epoch predictions use the documented prior"


def _caveats(doc) -> str:
    md = report.render(doc, "md").decode()
    return md.split("## Caveats", 1)[1].split("\n## ", 1)[0]


def test_caveats_follow_recorded_fields_not_names(resque_doc):
    named = copy.deepcopy(resque_doc)
    named["plan"]["name"] = "replay"
    named["candidates"][0].update(id="replay", label="replay")
    named["candidates"][1].update(label='"estimate"', error='"basis": "prior"')
    caveats = _caveats(named)
    assert REPLAY_CAVEAT not in caveats
    assert ESTIMATE_CAVEAT not in caveats and PRIOR_CAVEAT not in caveats


@pytest.mark.parametrize("name", ["ranking-kwh-cbc6ee8.json", "validation-cbc6ee8.json"])
def test_a_replay_meter_run_has_the_replay_caveat(name):
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    caveats = _caveats(doc)
    assert REPLAY_CAVEAT in caveats and PRIOR_CAVEAT in caveats
    assert ESTIMATE_CAVEAT not in caveats


def test_estimated_energy_and_calibrated_epochs_have_their_caveats(kwh_doc):
    doc = copy.deepcopy(kwh_doc)
    for c in doc["candidates"]:
        if c.get("predicted"):
            c["predicted"].update(energy_basis="estimate", basis="calibrated")
    doc["cost"]["calibration_basis"] = {"dist": "calibrated", "task": "calibrated"}
    caveats = _caveats(doc)
    assert ESTIMATE_CAVEAT in caveats
    assert REPLAY_CAVEAT not in caveats and PRIOR_CAVEAT not in caveats


def test_html_lists_failed_candidates_with_reasons_and_provenance(kwh_run):
    run_id, doc = kwh_run
    text = report.render(doc, "html").decode()
    assert "/nonexistent/x.npz (missing): data not found: /nonexistent/x.npz" in text
    for needle in (
        run_id,
        doc["created"],
        "Sangarya &amp; Kim",
        "AAAI 2025",
        REPLAY,
        "the replay meter: a fixed figure, not a measurement",
        "300 g CO2e/kWh",
        doc["environment"]["torch"],
        "run.samples_per_class",
    ):
        assert needle in text, needle


# ----------------------------------------------------------------------------- PDF
def _pdf_text(data: bytes) -> tuple[int, str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(p.extract_text() for p in reader.pages)


def _renders_to_png(data: bytes, tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        return  # poppler-utils absent: pypdf's reading is the check left
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(data)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and all(p.stat().st_size > 1000 for p in pages)


@pytest.mark.skipif(report.find_chromium() is None, reason="needs a Chromium to print the charts")
def test_pdf_printed_by_chromium_has_the_charts(kwh_run, tmp_path):
    data = report.render(kwh_run[1], "pdf")
    n, text = _pdf_text(data)
    assert n >= 2
    assert "Reuse gaussian_noise:1 (noise-1) first" in " ".join(text.split())
    assert "1. gaussian_noise:1" in text  # a bar's label: the chart was drawn
    assert "charts omitted" not in text
    # user text (the EVIL label, in the table and a chart) printed as typed: escaped once
    assert "<script>alert(1)</script>" in text and "&lt;" not in text and "&amp;" not in text
    _renders_to_png(data, tmp_path)


def test_pdf_without_a_browser_has_the_tables_and_says_why(kwh_run, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    out = report.export_run(kwh_run[1], "pdf", tmp_path / "r.pdf")
    assert out.note == "charts omitted: no Chromium found for static rendering"
    n, text = _pdf_text(out.path.read_bytes())
    assert n >= 2
    assert "Note: charts omitted: no Chromium found for static rendering." in text
    assert "Decision. Reuse gaussian_noise:1 (noise-1) first" in text
    assert "noise-1" in text and "missing" in text and "AAAI 2025" in text
    _renders_to_png(out.path.read_bytes(), tmp_path)


def test_pdf_falls_back_when_printing_fails(kwh_run, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", shutil.which("false"))
    out = report.export_run(kwh_run[1], "pdf", tmp_path / "r.pdf")
    assert out.note.startswith("charts omitted: printing with ") and "exit code 1" in out.note
    assert _pdf_text(out.path.read_bytes())[0] >= 1


# ----------------------------------------------------------------------------- Markdown
def test_markdown_is_a_model_card_led_by_the_decision(kwh_run):
    md = report.render(kwh_run[1], "md").decode()
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert headings[0] == "# RESQUE ranking: tiny report"
    order = [
        "## Candidates",
        "## Model details",
        "## Intended use of the reuse decision",
        "## Metrics and method",
        "## Energy provenance",
        "## Caveats",
        "## Run, settings, hardware and versions",
    ]
    assert [h for h in headings if h in order] == order
    assert md.splitlines()[2].startswith("**Decision.** Reuse **gaussian_noise:1** (noise-1) first")
    # user text cannot open HTML, links or table cells
    assert "\\<script\\>alert(1)\\</script\\> & \\<a href=" in md and "\\| \\*x\\*" in md
    table = [line for line in md.splitlines() if line.startswith("| 1 ")]
    assert len(table) == 1 and "noise-1" in table[0]


# ----------------------------------------------------------------------------- JSON
def test_json_export_import_load_gives_the_same_document(kwh_run, tmp_path):
    run_id, doc = kwh_run
    exported = report.export_run(run_id, "json", tmp_path / "run.json")
    other = tmp_path / "elsewhere"
    assert report.import_run(exported.path, cache_dir=other) == run_id
    assert RunStore(other).load(run_id) == doc
    # bytes (an upload) work too, and a second import of the same run is harmless
    assert report.import_run(exported.path.read_bytes(), cache_dir=other) == run_id
    assert RunStore(other).list() == [run_id]


def test_import_refuses_a_different_run_under_a_taken_id(kwh_run, tmp_path):
    run_id, doc = kwh_run
    changed = json.dumps({**doc, "seconds": 99.0}).encode()
    report.import_run(report.render(doc, "json"), cache_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match=f"a different run with id '{run_id}' is already stored"):
        report.import_run(changed, cache_dir=tmp_path / "c")


def test_import_gives_an_unsaved_run_a_new_id(kwh_doc, tmp_path):
    assert kwh_doc["run_id"] is None
    run_id = report.import_run(report.render(kwh_doc, "json"), cache_dir=tmp_path)
    assert RunStore(tmp_path).load(run_id) == {**kwh_doc, "run_id": run_id}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", r"^the uploaded file is not JSON \(Expecting value, line 1\): export it"),
        (b"[1, 2]", r"^a run document must be a JSON object, got list$"),
        (b'{"type": "score"}', r"^not a RESQUE run: type 'score'; expected one of ranking, "),
        (
            b'{"type": "ranking", "plan": {}}',
            r"^ranking run document field 'candidates' is missing; it must be a list of objects "
            r"\(each a candidate result\)$",
        ),
        (
            b'{"type": "ranking", "plan": {}, "candidates": [], "run_id": "../x"}',
            r"^invalid run id '\.\./x': expected the form",
        ),
    ],
)
def test_import_rejects_what_is_not_a_run(content, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        report.import_run(content, cache_dir=tmp_path)


# ----------------------------------------------------------------------------- CSV
def test_csv_is_the_ranking_table_in_rank_order(kwh_run):
    _, doc = kwh_run
    rows = list(csv.DictReader(io.StringIO(report.render(doc, "csv").decode())))
    assert list(rows[0])[:8] == [
        "rank", "id", "kind", "candidate_kind", "label", "resque", "shift", "severity",
    ]  # fmt: skip
    assert {"predicted_energy_kwh_low", "predicted_co2_kg_high", "energy_method"} <= set(rows[0])
    assert [r["id"] for r in rows] == [c["id"] for c in doc["candidates"]]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5", ""]
    kwh = [float(r["predicted_energy_kwh"]) for r in rows[:5]]
    assert kwh == sorted(kwh)
    for r in rows[:5]:
        lo, v, hi = (float(r[f"predicted_co2_kg{s}"]) for s in ("_low", "", "_high"))
        assert lo <= v <= hi
    assert rows[1]["label"] == EVIL  # raw text: CSV is data, quoted by the csv module
    assert (
        rows[-1]["status"] == "failed" and rows[-1]["error"] == "data not found: /nonexistent/x.npz"
    )
    assert float(rows[0]["resque"]) == doc["candidates"][0]["resque"]  # full precision


def test_csv_without_a_cost_model_has_no_prediction_columns(resque_doc):
    head = report.render(resque_doc, "csv").decode().splitlines()[0].split(",")
    assert not [h for h in head if h.startswith("predicted")] and head[-2:] == ["status", "error"]


# ----------------------------------------------------------------------------- validation runs
def test_validation_run_in_every_format(store, validation_doc, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "none"))  # the text PDF: fast
    run_id = store.save(validation_doc)
    doc = store.load(run_id)
    text = report.render(doc, "html").decode()
    parsed = _Refs()
    parsed.feed(text)
    assert parsed.refs == [] and parsed.charts == 3  # predicted vs measured, 3 measures
    assert "letters (letters): out of memory" in text
    md = report.render(doc, "md").decode()
    for heading in (
        "## Retrained candidates: predicted against measured",
        "## Correlation of RESQUE with each measure",
        "## Calibration: RESQUE to epochs",
        "## Energy provenance",
    ):
        assert heading in md
    assert "Spearman +1.00" in md  # noise-1 < noise-5 < blur-3 in RESQUE and in epochs
    rows = list(csv.DictReader(io.StringIO(report.render(doc, "csv").decode())))
    assert [r["candidate_id"] for r in rows] == [
        "noise-1",
        "blur-3",
        "noise-5",
        "parity",
        "letters",
    ]
    assert rows[1]["epochs"] == "3" and rows[-1]["error"] == "out of memory"
    assert _pdf_text(report.render(doc, "pdf"))[0] >= 1
    assert json.loads(report.render(doc, "json")) == doc


def test_render_rejects_unknown_formats_and_documents(kwh_doc):
    with pytest.raises(ConfigError, match=r"^unknown report format 'docx'; allowed: html, pdf, md"):
        report.render(kwh_doc, "docx")
    with pytest.raises(ConfigError, match=r"^not a RESQUE run: it has no 'type' field; export"):
        report.render({"candidates": []}, "md")


def test_predicted_vs_measured_chart(validation_doc):
    fig = charts.predicted_vs_measured(validation_doc["runs"], "epochs")
    names = [t.name for t in fig.data]
    assert names == [charts.KIND_TITLES["dist"], charts.KIND_TITLES["task"], "perfect prediction"]
    assert list(fig.data[0].x) == [1, 3, 2]  # the failed run has no point
    with pytest.raises(ConfigError, match=r"^unknown measure 'joules'; allowed: epochs, "):
        charts.predicted_vs_measured(validation_doc["runs"], "joules")


# ----------------------------------------------------------------------------- command line
def test_report_command_writes_each_format(kwh_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "none"))
    run_id, doc = kwh_run
    for fmt in ("html", "md", "json", "csv"):
        out = tmp_path / f"r.{fmt}"
        assert main(["report", "--run", "latest", "--out", str(out)]) == 0
        assert capsys.readouterr().out.startswith(f"wrote {out} ({fmt}, ")
        assert out.read_bytes() == report.render(doc, fmt)
    out = tmp_path / "report.bin"
    assert main(["report", "--run", run_id, "--format", "pdf", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.err == "note: charts omitted: no Chromium found for static rendering\n"
    assert out.read_bytes().startswith(b"%PDF")


def test_report_command_imports(kwh_run, tmp_path, capsys):
    run_id, _ = kwh_run
    path = tmp_path / "run.json"
    assert main(["report", "--run", run_id, "--out", str(path)]) == 0
    capsys.readouterr()
    assert main(["report", "--import", str(path), "--cache-dir", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out == f"imported run {run_id}\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run", "nope", "--out", "r.html"], "invalid run id 'nope': expected the form "),
        (["--run", "20260101-120000-abcdef", "--out", "r.html"], "no stored run "),
        (["--run", "latest", "--out", "r.txt"], "unknown report format 'txt'; allowed: html, "),
        (["--run", "latest", "--out", "report"], "give --format (html, pdf, md, json, csv) or "),
        (["--run", "latest"], "--out FILE is required with --run"),
        (["--import", "r.json", "--out", "x.md"], "--out and --format go with --run, not with "),
        (["--import", "nothing.json"], "run file not found: nothing.json\n"),
        (
            ["--run", "latest", "--out", "no/such/dir/r.md"],
            "cannot write no/such/dir/r.md: No such",
        ),
    ],
)
def test_report_command_errors(argv, message, kwh_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_report_command_without_runs(tmp_path, capsys):
    argv = ["report", "--run", "latest", "--out", "r.md", "--cache-dir", str(tmp_path)]
    assert main(argv) == 2
    assert (
        capsys.readouterr().err
        == f"error: no stored runs in {tmp_path / 'runs'}: rank a plan first\n"
    )
