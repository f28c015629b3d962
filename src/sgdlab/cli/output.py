"""What the commands print: exit codes, durations, the line per evaluation, and loaded models checked for MNIST."""

from ..errors import SgdlabError

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
    return (f"epoch {history.epoch[-1]:6.2f} | iteration {history.iteration[-1]:6d} | "
            f"train acc {history.train_acc[-1]:.4f} | test acc {history.test_acc[-1]:.4f} | "
            f"loss {loss} | {history.seconds[-1]:7.1f} s")


def duration(seconds):
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def load_mnist_model(path, input_size):
    """The network saved at `path`, refused clearly unless it takes `input_size` pixels per image."""
    from ..runs.model_file import load_model

    network, _ = load_model(path)
    if network.sizes[0] != input_size:
        raise SgdlabError(f"{path} takes {network.sizes[0]} inputs per image, but MNIST images have "
                          f"{input_size} pixels: use a model trained on MNIST")
    return network
