"""What every layer kind shares: the `Layer` defaults, the kinds' registry, and the checks of a layer's
specification and input shape."""

import contextlib
import math

import numpy as np

from ...errors import ConfigError

MAX_FEATURES = 1 << 24  # values per sample in any layer's output or padded input: 64 MB of float32 a sample
MAX_WINDOW = 32 * 32  # offsets in a filter or pooling window, each one pass of a loop (pooling's forms, col2im)

LAYER_KINDS = {}  # a spec's "type" -> its layer kind; activations are found by their names


def product_dtype(dtype):
    """The float type in which a matrix product of `dtype` arrays sums: float32 for float16 ones, as NumPy's own
    float16 product does (each sum rounded to float16 once), here through BLAS, several times sooner; else their
    own."""
    return np.float32 if dtype == np.float16 else dtype


class Layer:
    """What the layers share: no parameters, the output shaped as the input, nothing kept beside the buffers."""

    kind = None
    in_place = False
    uses_train_flg = False
    parameter_names = ()
    decayed_names = ()
    statistic_names = ()
    rng = None  # the generator of a layer that draws random numbers in training (dropout's masks)
    takes_max = False  # max pooling: the fast paths may run an activation that commutes with it after it
    commutes_with_max = False
    writes_blocks = False  # its output can be laid out in the blocks of the pooling after it (see `Pooling.blocks`)
    blocks = None
    per_sample = True  # each sample's output depends on that sample alone, and nothing is drawn at random
    batched_product = False  # one matrix product over the whole batch: faster whole than in chunks of rows
    # (height, width, stride, pad) of the input positions each output position reads: an image layer's own
    # position alone by default; a window's for a convolution and a pooling (what a filter sees: its receptive field)
    window = (1, 1, 1, 0)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__ and cls.kind is not None:
            LAYER_KINDS[cls.kind] = cls

    @property
    def parameters(self):
        return tuple(getattr(self, name) for name in self.parameter_names)

    @property
    def gradients(self):
        """The gradients the last `backward` left, in `parameter_names`' order (dW, db)."""
        return tuple(getattr(self, f"d{name}") for name in self.parameter_names)

    @property
    def statistics(self):
        return tuple(getattr(self, name) for name in self.statistic_names)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def spec(self):
        return {"type": self.kind}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        spec_fields(spec, {})
        return cls()

    def frozen(self):
        return contextlib.nullcontext()

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        return None

    # The fast numerical gradient's forms (`sgdlab.engine.conv_perturbation`): many nudged copies of one batch
    # carried through the layer at once, as arrays (nudges, N, *shape), from the book's forward pass in
    # training mode (`frozen_training`) on x, which gave out. Where the carried values hold the one image
    # channel a nudge has moved so far ((nudges, N, 1, H, W), `channel` its index), so do a `channelwise`
    # layer's results; any other layer's carry gives every channel (or unit) of its output.
    channelwise = False  # each output channel depends on the same channel of its input alone
    kink = None  # where its slope jumps, in words: what a nudge crosses there (None: smooth everywhere)

    def reference_state(self, x, out, find_kinks):
        """What `carry` and `nudged` need of the reference pass, kept right after the book's forward gave `out`
        (dropout's mask, pooling's winners, an activation's reach to its kinks `with find_kinks`)."""
        return None

    def carry(self, moved, x, out, state, channel):
        """(its output for the carried inputs `moved`, whether each nudge crossed a kink, or None): the same
        arithmetic as `forward`'s in float64, for every nudge at once."""
        raise ConfigError(f"{self!r} declares no carry: the fast numerical gradient cannot pass a nudge through it")

    def nudge_state(self, x, out, state):
        """What `nudged` needs for every nudge of its parameters, prepared once (by default the reference state)."""
        return state

    def nudged(self, name, entries, e, x, out, prepared, channel):
        """Its output when each of the flat `entries` of parameter `name` is nudged by its `e`: (nudges, N,
        *shape), of the one `channel` an image layer's nudges move (its parameters' entries are grouped by
        the output channel they move, channel-major)."""
        raise ConfigError(f"{self!r} declares no nudges of its parameters")

    def follow_batch(self, x):
        """Move what training follows (running statistics) by the batch `x` once, as a training step does."""

    def workspace_bytes(self, rows, input_shape, dtype, train=True):
        """The bytes `workspace` holds for `rows` samples, counted without making it for them: made for one
        sample and for two (at most `MAX_WORK_PER_SAMPLE` values each, as `ForwardPass.rows_within` does), the
        difference a sample's share, the rest what it holds whatever the rows (a convolution's weights)."""
        one, two = (sum(array.nbytes for array in arrays_of(self.workspace(n, input_shape, dtype, train)))
                    for n in (1, 2))
        return one + (two - one) * (rows - 1)

    def work_per_sample(self, input_shape):
        """The values one sample's forward pass through this layer writes (its output, and a convolution's
        columns or a pooling's windows besides): the network bounds their sum, which bounds one sample's
        buffers and time."""
        return math.prod(self.output_shape(input_shape))


def arrays_of(work):
    """The arrays a workspace holds: a dict's values, a tuple's items, or none."""
    values = work.values() if isinstance(work, dict) else work if isinstance(work, tuple) else ()
    return [value for value in values if isinstance(value, np.ndarray)]


def in_channel(values, channel):
    """Reference values (N, *shape) as carried arrays (nudges, N, *shape) see them: (1, N, ...), only `channel`
    of an image's when it is given."""
    return values[None] if channel is None else values[None, :, channel:channel + 1]


def spec_fields(spec, fields):
    """The values of a layer specification (a dict with its "type"), each checked against its `Range` in
    `fields` ({name: (range, default)}, default None for a required one); an unknown key is refused."""
    kind = spec["type"]
    unknown = sorted(set(spec) - set(fields) - {"type"})
    if unknown:
        known = ", ".join(fields) or "no settings"
        raise ConfigError(f"a {kind} layer takes {known}, not {', '.join(map(str, unknown))}")
    values = {}
    for name, (value_range, default) in fields.items():
        if name not in spec and default is None:
            raise ConfigError(f"a {kind} layer needs its {name}")
        values[name] = value_range.check(f"{kind}'s {name}", spec.get(name, default))
    return values


def image_shape(layer, input_shape, pad=0):
    """(C, H, W) of a layer's per-sample input, or a `ConfigError` naming the layer; padded by `pad` on every
    side, it must hold at most `MAX_FEATURES` values."""
    if len(input_shape) != 3:
        raise ConfigError(f"{layer!r} takes (channels, height, width) images, got samples of shape "
                          f"{tuple(input_shape)}: place it before the first affine layer")
    C, H, W = input_shape
    if C * (H + 2 * pad) * (W + 2 * pad) > MAX_FEATURES:
        raise ConfigError(f"{layer!r}: its input of shape {tuple(input_shape)} padded by {pad} holds more than the "
                          f"{MAX_FEATURES:,} values per sample sgdlab builds")
    return input_shape


def padded_size(input_shape, pad):
    """The values of one (C, H, W) sample padded by `pad` on every side, as a layer's padded copy holds them (none
    without padding)."""
    C, H, W = input_shape
    return C * (H + 2 * pad) * (W + 2 * pad) if pad else 0


def check_window(layer, what, height, width):
    """A `ConfigError` naming `layer` if a `what` of height x width has more than `MAX_WINDOW` offsets."""
    if height * width > MAX_WINDOW:
        raise ConfigError(f"{layer}: a {what} of {height}x{width} has more than the {MAX_WINDOW} offsets sgdlab "
                          "slides (32x32, more than an MNIST image)", f"use a smaller {what}")
