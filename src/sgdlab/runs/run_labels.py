"""How runs are named beside each other: by the settings in which they differ, their numbers kept short."""

UNCOMPARED = ("data_dir",)  # settings that do not change what a run learns


def short_value(value):
    """A setting's value as a label shows it: a float to 4 significant digits (3 in scientific notation)."""
    if isinstance(value, float) and value != 0 and not 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def difference_labels(names, settings):
    """One label per run: the settings in which the runs differ ("lr=0.01, optimizer=adam"), else its name;
    the values in full where shortened ones would not tell the runs apart."""
    keys = sorted({key for run in settings for key in run} - set(UNCOMPARED))
    differing = [key for key in keys if len({repr(run.get(key)) for run in settings}) > 1]
    for shown in (short_value, str):
        labels = [", ".join(f"{key}={shown(run.get(key))}" for key in differing) for run in settings]
        if len(set(labels)) == len(labels):
            break
    return [label or name for label, name in zip(labels, names)]
