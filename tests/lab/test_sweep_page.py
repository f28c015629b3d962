"""`sgdlab view SWEEP_DIR`: a sweep's trials on the lab page, ranked by validation accuracy beside the scatter of
its search, followed as its results.json is rewritten, each trial looked into through its own run folder; and
results.json, a user's file, reaching the page only as numbers and short texts."""

import json
import re
import shutil

import pytest
from starlette.testclient import TestClient

from sgdlab.lab.catalog import FolderLabRun, SweepTrials, folder_lab, folder_runs
from sgdlab.lab.server import create_app
from sgdlab.runs.search_space import parse_search
from sgdlab.runs.sweep import RESULTS_JSON, Sweep, load_sweep, new_sweep, ranked, read_results, run_sweep, write_results
from tests.lab.test_server import TOKEN, _read_events
from tests.processes import lab_page, press_ctrl_c

pytestmark = pytest.mark.usefixtures("shared_local_clusters")  # see tests/conftest.py

SETTINGS = {"train_size": 300, "validation": 0.2, "hidden_size": 10, "epochs": 2}
TRIALS = 8  # 4 a round, 2 rounds


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, data_dir, shared_local_clusters):
    sweep = Sweep((parse_search("lr=log:1e-2:1"), parse_search("weight_decay=log:1e-6:1e-2")), SETTINGS, trials=4,
                  rounds=2, seed=0)
    out = new_sweep(sweep, tmp_path_factory.mktemp("sweep") / "sweep", data_dir=data_dir)
    run_sweep(out, workers=1)
    return out


def best_first(sweep_dir):
    """The trial numbers as the page must list them: the ranked ones, then the rest by number."""
    rows = read_results(sweep_dir)
    chosen = [row["trial"] for row in ranked(rows.values())]
    return chosen + sorted(set(rows) - set(chosen))


def client_for(lab):
    return TestClient(create_app(lab, TOKEN), base_url="http://127.0.0.1", headers={"X-Sgdlab-Token": TOKEN})


def test_the_page_gets_the_sweeps_definition_and_its_trials_best_first(sweep_dir, data_dir):
    with client_for(folder_lab([sweep_dir], data_dir)) as client:
        definition = client.get("/api/sweep").json()["sweep"]
        with client.stream("GET", "/api/sweep/stream") as stream:
            [(event, results)] = _read_events(stream, 1)
        listed = client.get("/api/runs").json()
    assert definition["name"] == "sweep" and (definition["trials"], definition["rounds"]) == (4, 2)
    assert [(search["name"], search["kind"]) for search in definition["searches"]] == [("lr", "log"),
                                                                                       ("weight_decay", "log")]
    assert event == "results" and results["total"] == TRIALS and results["message"] is None
    rows = results["rows"]
    assert [row["trial"] for row in rows] == best_first(sweep_dir) and len(rows) == TRIALS
    stored = read_results(sweep_dir)
    for row in rows:
        assert row["run"] == f"trial-{row['trial']}" and row["settings"] == stored[row["trial"]]["settings"]
        assert {key: row[key] for key in ("round", "val_acc", "test_acc", "status")} == {
            key: stored[row["trial"]][key] for key in ("round", "val_acc", "test_acc", "status")}
    overlaid = [row["run"] for row in rows if row["status"] == "finished"][:5]
    assert [summary["id"] for summary in results["best"]] == overlaid
    assert listed == results["best"]  # the runs the page lists: the best five, whose curves it overlays


def test_a_trial_is_served_as_any_run_folder_opened_only_when_asked_for(sweep_dir, data_dir):
    lab = folder_lab([sweep_dir], data_dir)
    assert isinstance(lab.sweep, SweepTrials)
    lab.summary()
    assert lab.runs == {}  # listing the sweep reads no trial's history
    with client_for(lab) as client:
        with client.stream("GET", "/api/runs/trial-3/stream") as stream:
            (_, update), (_, inspection) = _read_events(stream, 2)
        for name in ("trial-8", "trial-03", "sweep.json", "..%2Fsweep"):  # no such trial, or not a trial at all
            assert client.get(f"/api/runs/{name}/stream").status_code == 404, name
    assert list(lab.runs) == ["trial-3"] and isinstance(lab.runs["trial-3"], FolderLabRun)
    assert update["name"] == "trial-3" and update["status"] == "finished"
    assert [row["epoch"] for row in update["evaluations"]["rows"]] == [0, 1, 2]
    assert len(inspection["per_digit"]) == 10 and len(inspection["gallery"]) == 32


def test_the_results_are_sent_again_as_the_sweep_rewrites_them(sweep_dir, data_dir, tmp_path):
    copy = shutil.copytree(sweep_dir, tmp_path / "running")
    sweep, _ = load_sweep(copy)
    rows = read_results(copy)
    write_results(copy, sweep, {trial: row for trial, row in rows.items() if row["round"] == 1})  # round 2 to come
    with client_for(folder_lab([copy], data_dir)) as client, client.stream("GET", "/api/sweep/stream") as stream:
        lines = stream.iter_lines()
        first = _next_results(lines)
        write_results(copy, sweep, rows)
        second = _next_results(lines)
    assert sorted(row["trial"] for row in first["rows"]) == [0, 1, 2, 3]
    assert [row["trial"] for row in second["rows"]] == best_first(copy)


def test_damaged_results_are_said_and_the_rows_read_before_kept(sweep_dir, tmp_path):
    trials = SweepTrials(shutil.copytree(sweep_dir, tmp_path / "sweep"))
    before = trials.results()
    (trials.folder / RESULTS_JSON).write_text('{"trials": [{"trial": ')
    after = trials.results()
    assert after["rows"] == before["rows"] and after["message"]["code"] == "sweep.unreadable"
    assert "cannot read" in after["message"]["text"]


def test_only_numbers_short_texts_and_the_sweeps_own_choices_reach_the_page(tmp_path):
    sweep = Sweep((parse_search("lr=log:1e-2:1"), parse_search("optimizer=choice:sgd,adam")), {"validation": 0.2},
                  trials=3)
    folder = new_sweep(sweep, tmp_path / "sweep")
    hostile = "<img src=x onerror=alert(1)>"
    (folder / RESULTS_JSON).write_text(json.dumps({"trials": [
        {"trial": 0, "round": 1, "settings": {"lr": "<b>1</b>", "optimizer": "<a href='javascript:x'>sgd</a>"},
         "status": "finished", "val_acc": "0.99", "train_acc": True, "worker": hostile * 100},
        {"trial": 1, "round": 1, "settings": {"lr": 0.1, "optimizer": "adam"}, "status": "finished", "val_acc": 0.5},
        {"trial": 2, "settings": [], "status": {"not": "text"}, "seconds": [1]}]}))
    results = SweepTrials(folder).results()
    rows = {row["trial"]: row for row in results["rows"]}
    assert [row["trial"] for row in results["rows"]] == [1, 0, 2]  # a val_acc that is not a number ranks nothing
    assert rows[0]["settings"] == {"lr": None, "optimizer": None} and rows[1]["settings"] == {"lr": 0.1,
                                                                                               "optimizer": "adam"}
    assert (rows[0]["val_acc"], rows[0]["train_acc"], len(rows[0]["worker"])) == (None, None, 200)
    assert rows[2] == {"trial": 2, "round": None, "settings": {"lr": None, "optimizer": None}, "val_acc": None,
                       "train_acc": None, "test_acc": None, "seconds": None, "status": None, "worker": None,
                       "error": None, "run": None}
    assert results["best"] == []  # no trial folder yet: nothing to overlay


def test_a_sweep_beside_other_folders_is_read_as_a_folder_of_runs(sweep_dir):
    runs = folder_runs([sweep_dir, sweep_dir / "trial-0"])
    assert isinstance(runs, list) and len(runs) == TRIALS + 1


@pytest.mark.slow  # the quick loop drives the run page in Chromium (tests/lab/test_page.py) and this page's API above
def test_the_sweep_page_ranks_the_trials_draws_the_search_and_looks_into_the_trial_clicked(browser, sweep_dir):
    from tests.lab.test_page import Page

    with lab_page("view", sweep_dir, "--no-browser") as (process, address):
        tab = Page(browser, address)
        table = tab.page.locator("#trials tbody tr")
        tab.wait_for(lambda: table.count() == TRIALS)
        order = best_first(sweep_dir)
        assert [int(text) for text in tab.page.locator("#trials tbody td:first-child").all_text_contents()] == order
        assert "not used to choose" in tab.page.text_content("#trials thead")
        charts = tab.page.evaluate("() => [...document.querySelectorAll('#search-charts .js-plotly-plot')].map("
                                   "(chart) => [chart.layout.xaxis.type, chart.layout.xaxis.title.text, "
                                   "chart.data.filter((trace) => trace.name.startsWith('round')).length])")
        assert charts == [["log", "lr", 2], ["log", "weight_decay", 2]]  # one per searched setting, a trace per round
        tab.wait_for(lambda: tab.page.text_content("#run-name") == f"trial-{order[0]}")  # the best, at first

        clicked = order[-1]  # not among the best five: its curves join theirs
        table.nth(TRIALS - 1).click()
        status = read_results(sweep_dir)[clicked]["status"]
        tab.wait_for(lambda: tab.page.text_content("#run-name") == f"trial-{clicked}"
                     and tab.page.text_content("#status") == status)
        assert "focused" in table.nth(TRIALS - 1).get_attribute("class")
        tab.wait_for(lambda: tab.page.locator("#gallery figure").count() == 32)  # its mistakes, looked into
        legend = "(id) => [...document.querySelectorAll(`#${id} .legendtext`)].map((e) => e.textContent)"
        tab.wait_for(lambda: len(tab.page.evaluate(legend, "loss-chart")) == 6)
        assert f"trial {clicked}" in tab.page.evaluate(legend, "loss-chart")  # one entry a run, by its label
        assert sorted(tab.page.evaluate(legend, "accuracy-chart")) == sorted(tab.page.evaluate(legend, "loss-chart"))
        inside = ("(id) => { const chart = document.getElementById(id).getBoundingClientRect();"
                  " const legend = document.querySelector(`#${id} .legend`).getBoundingClientRect();"
                  " return legend.left >= chart.left && legend.right <= chart.right && legend.top >= chart.top"
                  " && legend.bottom <= chart.bottom && legend.width < chart.width; }")
        assert tab.page.evaluate(inside, "loss-chart") and tab.page.evaluate(inside, "accuracy-chart")
        assert tab.page.locator("#runs label").count() == 6
        tab.page.click("[data-language=ko]")  # the trials named in the page's language, in the legends and the list
        tab.wait_for(lambda: f"시행 {clicked}" in tab.page.evaluate(legend, "loss-chart"))
        assert all(re.fullmatch(r"시행 \d+", label) for label in tab.page.locator("#runs label span").all_text_contents())
        tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
        code, _, err = press_ctrl_c(process)
    assert (code, err) == (0, "")


def _next_results(lines):
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line[len("data: "):])
    raise AssertionError("the stream ended")


@pytest.mark.slow  # as the test above
def test_many_finished_runs_shown_together_leave_the_page_free_to_ask(browser, sweep_dir, tmp_path):
    """A browser opens six connections to a server at most: the streams of finished runs must not hold them all."""
    from tests.lab.test_page import Page

    folder = tmp_path / "runs"
    for trial in sweep_dir.glob("trial-*"):
        shutil.copytree(trial, folder / trial.name)
    with lab_page("view", folder, "--no-browser") as (process, address):
        tab = Page(browser, address)
        boxes = tab.page.locator("#runs label input[type=checkbox]")
        tab.wait_for(lambda: boxes.count() == TRIALS)
        for k in range(TRIALS):
            if not boxes.nth(k).is_checked():
                boxes.nth(k).check()
        curves = ("() => (document.getElementById('loss-chart').data ?? []).filter((t) => t.name !== 'raw'"
                  " && t.legendgroup !== 'sets').length")  # a run each (none until drawn); the whole sets' losses of
        # the one looked into left out
        tab.wait_for(lambda: tab.page.evaluate(curves) == TRIALS)
        asked = tab.page.evaluate("""async () => {
            const answer = fetch('/api/runs', {headers: {'X-Sgdlab-Token': TOKEN}}).then((r) => r.ok ? 'answered' : 'refused');
            const late = new Promise((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5000));
            return Promise.race([answer, late]);
        }""")
        assert asked == "answered"
        tab.page.locator("#runs label input[type=radio]").nth(TRIALS - 1).check()  # the last run, looked into
        tab.wait_for(lambda: tab.page.locator("#gallery figure").count() == 32)
        tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
        code, _, err = press_ctrl_c(process)
    assert (code, err) == (0, "")
