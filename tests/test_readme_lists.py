"""The READMEs' lists of choices (optimizers, activations, initial weights, every option's values) are the
registries' and the command line's: a new optimizer or activation cannot go undocumented, nor a removed one
stay documented."""

import argparse
import re
from pathlib import Path

import pytest

from sgdlab.cli import build_parser
from sgdlab.nn.activations import activation_names
from sgdlab.nn.init import SCALED_INITS
from sgdlab.nn.optimizers import OPTIMIZERS

READMES = [Path(__file__).parent.parent / name for name in ("README.md", "README.ko.md")]
REGISTRIES = {"optimizers": tuple(OPTIMIZERS), "activations": activation_names()}
CLASS_NAMES = tuple(optimizer.__name__ for optimizer in OPTIMIZERS.values())


def command_choices():
    """{(command, option or None for a positional): its choices} of every `sgdlab` command."""
    found = {}
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in subcommands.choices.items():
        for action in parser._actions:
            if action.choices is not None:
                for option in action.option_strings or [None]:
                    found[command, option] = tuple(action.choices)
    return found


def synopsis_lists(text):
    """(command, option or None, the values written) for each `a|b|c` in the text's shell blocks, metavars
    (X, N) left out."""
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        command = None
        for line in block.splitlines():
            starts = re.match(r"sgdlab ([\w-]+)", line)
            command = starts.group(1) if starts else command if line.startswith(" ") else None
            for option, values in re.findall(r"(?:(--[\w-]+) )?((?:[\w.-]+\|)+[\w.-]+)", line):
                yield command, option or None, [value for value in values.split("|") if not value.isupper()]


def runs(text, names, token):
    """Each run of two or more of `names` written one after another in `text`, each as `token` spells it
    (a format with {name}), separated by commas, "or" and line breaks only."""
    one = token.format(name="(?:" + "|".join(map(re.escape, names)) + ")")
    pattern = re.compile(rf"{one}(?:(?:,\s*|\s+or\s+|,\s+or\s+){one})+")
    for match in pattern.finditer(text):
        yield [name for name in names if re.search(token.format(name=re.escape(name)), match.group())]


@pytest.mark.parametrize("readme", READMES, ids=lambda path: path.name)
def test_every_option_list_in_the_commands_is_the_command_lines(readme):
    choices = command_choices()
    checked = set()
    for command, option, values in synopsis_lists(readme.read_text()):
        if option == "--weight-init":  # a number, or a name: each scale named once
            assert set(values) <= set(SCALED_INITS), values
            assert {SCALED_INITS[name] for name in values} == set(SCALED_INITS.values()), values
        else:
            assert (command, option) in choices, (command, option, values)
            assert values == list(choices[command, option]), (command, option)
        checked.add(option)
    assert {"--optimizer", "--activation", "--weight-init", "--grad", "--sampling", "--dtype", "--net"} <= checked


@pytest.mark.parametrize("readme", READMES, ids=lambda path: path.name)
@pytest.mark.parametrize("registry", REGISTRIES)
def test_every_list_of_optimizers_or_activations_names_them_all(readme, registry):
    text, names = readme.read_text(), REGISTRIES[registry]
    lists = [*runs(text, names, '`"{name}"`')]
    if registry == "optimizers":
        lists += [[names[CLASS_NAMES.index(name)] for name in written]
                  for written in runs(text, CLASS_NAMES, r"`{name}(?:\([^`]*\))?`")]
        lists += [written.split(",") for written in re.findall(r"--optimizers ([\w,]+)`", text)]
    whole = [written for written in lists if len(written) >= 3]  # two: a pair the text is about
    assert whole, f"no list of the {registry} in {readme.name}"
    for written in whole:
        assert set(written) == set(names), f"{readme.name} lists {written}: the {registry} are {list(names)}"


@pytest.mark.parametrize("readme", READMES, ids=lambda path: path.name)
def test_every_initial_weight_scale_is_named(readme):
    text = readme.read_text()
    assert all(f'`"{name}"`' in text for name in SCALED_INITS), [n for n in SCALED_INITS if f'`"{n}"`' not in text]
