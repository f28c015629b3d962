"""How runs are named beside each other: by the settings in which they differ, their numbers kept short."""

from ..training.config import AUGMENT_DEFAULTS, OPTIMIZER_SETTINGS, nets_taking, optimizers_taking

UNCOMPARED = ("data_dir",)  # settings that do not change what a run learns


def short_value(value):
    """A setting's value as a label shows it: a float to 4 significant digits (3 in scientific notation)."""
    if isinstance(value, float) and value != 0 and not 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def takes(run, key):
    """Whether the run takes the setting `key`: a setting of some nets only (a convolution's filters, an mlp's
    hidden_sizes) or of some optimizers only (momentum) means nothing for the others; nor do augmentation's
    ranges without it."""
    if key in AUGMENT_DEFAULTS:
        return bool(run.get("augment"))
    owners = nets_taking(key)
    if owners and run.get("net") not in owners:
        return False
    return key not in OPTIMIZER_SETTINGS or run.get("optimizer") in optimizers_taking(OPTIMIZER_SETTINGS[key])


def difference_labels(names, settings):
    """One label per run: the settings in which the runs differ ("lr=0.01, optimizer=adam"), the net first, else
    its name; a setting of some nets only compared among the runs of those nets and shown for them; the values
    in full where shortened ones would not tell the runs apart."""
    keys = sorted({key for run in settings for key in run} - set(UNCOMPARED), key=lambda key: (key != "net", key))
    differing = [key for key in keys if len({repr(run.get(key)) for run in settings if takes(run, key)}) > 1]
    for shown in (short_value, str):
        labels = [", ".join(f"{key}={shown(run.get(key))}" for key in differing if takes(run, key))
                  for run in settings]
        if len(set(labels)) == len(labels):
            break
    return [label or name for label, name in zip(labels, names)]
