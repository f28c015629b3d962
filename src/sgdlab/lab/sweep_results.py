"""What the lab page shows of a sweep: what it searches, and its trials' rows as results.json has them.

results.json is a user's file: of each row only numbers and short texts
reach the page, the fields it knows, so a hand-edited or foreign file shows
as blanks, never as markup or as a page that stops drawing.
"""

from ..runs.sweep import ranked

BEST_OVERLAID = 5  # the best trials whose curves the page overlays: a sweep of a hundred stays light
MAX_TEXT = 200  # characters of a status, a worker's name or an error shown
OUTCOME_NUMBERS = ("val_acc", "train_acc", "test_acc", "seconds")


def sweep_definition(name, sweep):
    """The sweep named `name` (its folder's): its searches, the settings its trials share, trials per round,
    rounds and seed."""
    return {"name": name, **sweep.to_dict()}


def results_view(sweep, stored, runs, message=None):
    """The page's view of `stored` (results.json's rows, by trial): `rows`, best validation accuracy first and
    the trials not ranked after them by number, each with `run`, the id of its run folder from `runs` (by
    trial; None before it starts); `best`, the summaries of the best few finished trials to overlay; `total`,
    the trials the sweep will have; and `message`, what is wrong with results.json (a `sgdlab.lab.messages` message),
    None when nothing is."""
    rows = [_row(trial, row, sweep.searches, runs.get(trial)) for trial, row in sorted(stored.items())]
    best = ranked(rows)
    chosen = {row["trial"] for row in best}
    return {"rows": best + [row for row in rows if row["trial"] not in chosen],
            "best": [_summary(row) for row in best if row["run"] is not None][:BEST_OVERLAID],
            "total": sweep.trials * sweep.rounds, "message": message}


def _row(trial, row, searches, run_id):
    settings = row.get("settings") if isinstance(row.get("settings"), dict) else {}
    return {"trial": trial, "round": _number(row.get("round")),
            "settings": {search.name: _value(search, settings.get(search.name)) for search in searches},
            **{key: _number(row.get(key)) for key in OUTCOME_NUMBERS},
            "status": _text(row.get("status")), "worker": _text(row.get("worker")), "error": _text(row.get("error")),
            "run": run_id}


def _summary(row):
    """A trial as the page lists a run (as /api/runs does), with its number (the page names it in its language)."""
    return {"id": row["run"], "name": row["run"], "status": row["status"], "live": False,
            "settings": row["settings"], "label": f"trial {row['trial']}", "trial": row["trial"]}


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _value(search, value):
    """A searched setting's value: a number for a range, one of the sweep's own choices for a choice (anything
    else in a chart's labels, which plotly reads as markup, could be a link)."""
    if search.kind == "choice":
        return next((choice for choice in search.choices if choice == value and type(choice) is type(value)), None)
    return _number(value)


def _text(value):
    return value[:MAX_TEXT] if isinstance(value, str) else None
