"""A specification's layer kind, and the context every layer of a network is frozen in together."""

import contextlib

from ...errors import ConfigError
from ...ranges import check_choice
from ..activations import activation_names
from .activation import ActivationLayer
from .base import LAYER_KINDS


def layer_kind(spec):
    """The layer kind a specification names: one of `LAYER_KINDS`, or an activation's name."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ConfigError(f"a layer is specified by a dict with its 'type', such as {{'type': 'relu'}}, got {spec!r}")
    if spec["type"] in LAYER_KINDS:
        return LAYER_KINDS[spec["type"]]
    check_choice("a layer's type", spec["type"], (*sorted(LAYER_KINDS), *activation_names()))
    return ActivationLayer


@contextlib.contextmanager
def frozen_training(layers):
    """Training-mode forward passes that all see one network: each dropout mask is drawn once, on the first
    pass, and kept; running statistics stay as they are. A numerical gradient's nudges need this, or each
    loss would be of a differently masked network (and every nudge would move the statistics)."""
    with contextlib.ExitStack() as stack:
        for layer in layers:
            stack.enter_context(layer.frozen())
        yield
