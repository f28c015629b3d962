"""Command-line options built from the settings they set: one range or list of choices, and one help line, each."""

import argparse
import dataclasses
from pathlib import Path

from ..errors import ConfigError
from ..training.config import BOTH_WIDTHS, TrainConfig


def option_type(parse):
    """An argparse `type=` from a `parse(text)` whose ValueError says what is allowed."""

    def convert(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def path_given(text):
    """A path option's value: any but the empty string, which would name the current folder unseen."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty: name a file or folder (use . for the current folder)")
    return Path(text)


FIELD_DEFAULT = object()  # add_config_option's default: the field's own


def add_config_option(parser, name, default=FIELD_DEFAULT, help=None):
    """Add `--name` for the `TrainConfig` field `name`: its parser or choices, its default and its help. With
    the field's own default, an option not given is left out of the parsed arguments (`given_settings`)."""
    spec = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    shown = spec.default if default is FIELD_DEFAULT else default
    default = argparse.SUPPRESS if default is FIELD_DEFAULT else default
    help = help or spec.metadata["help"]
    flags = config_option_flags(name)
    if spec.metadata["choices"] is None and spec.metadata["parse"] is None:  # a flag: on when given
        parser.add_argument(*flags, dest=name, action="store_true", default=default, help=help)
        return
    options = {"default": default, "help": help + ("" if shown is None else f" (default {shown})")}
    if spec.metadata["choices"] is not None:
        options["choices"] = spec.metadata["choices"]
    else:
        options.update(type=option_type(spec.metadata["parse"]), metavar=spec.metadata["metavar"])
    parser.add_argument(*flags, dest=name, **options)


def config_option_flags(name):
    """The option strings of the setting `name`: its option's own name first, the field's too."""
    spec = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    flags = [f"--{name.replace('_', '-')}"]
    if spec.metadata["option"] is not None:
        flags.insert(0, f"--{spec.metadata['option']}")
    return flags


def given_settings(args):
    """The settings whose options were given on the command line. --hidden-size beside --hidden-sizes is refused,
    even at its default (which TrainConfig cannot tell from one left out)."""
    given = [spec.name for spec in dataclasses.fields(TrainConfig) if hasattr(args, spec.name)]
    if "hidden_size" in given and "hidden_sizes" in given:
        raise ConfigError(BOTH_WIDTHS)
    return given


def config_from_args(args):
    """The `TrainConfig` that the parsed options of `sgdlab train` describe (the defaults for those not given)."""
    return TrainConfig(**{name: getattr(args, name) for name in given_settings(args)})


def add_data_dir(parser):
    parser.add_argument("--data-dir", type=path_given, metavar="DIR",
                        help="folder holding the MNIST files (default: $SGDLAB_DATA, else "
                             "$XDG_CACHE_HOME/sgdlab/mnist, which is ~/.cache/sgdlab/mnist unless XDG_CACHE_HOME "
                             "is set; missing files are downloaded there)")
