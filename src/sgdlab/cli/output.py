"""What the commands print: exit codes, durations and the line per evaluation."""

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def say(args, message):
    """Print `message` unless the command was given --quiet."""
    if not getattr(args, "quiet", False):
        print(message, flush=True)


def evaluation_line(history):
    mean_loss = history.mean_loss_since_last_evaluation()
    if mean_loss is None:
        loss = "   -  "
    else:  # a diverging run's loss can be huge before it turns infinite: keep the column's width
        loss = f"{mean_loss:.4f}" if mean_loss < 1000 else f"{mean_loss:.0e}"
    validation = f" | val acc {history.val_acc[-1]:.4f}" if history.val_acc else ""
    return (f"epoch {history.epoch[-1]:6.2f} | iteration {history.iteration[-1]:6d} | "
            f"train acc {history.train_acc[-1]:.4f}{validation} | test acc {history.test_acc[-1]:.4f} | "
            f"loss {loss} | {history.seconds[-1]:7.1f} s")


def duration(seconds):
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
