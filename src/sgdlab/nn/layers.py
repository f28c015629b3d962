"""The building blocks of backpropagation, with the book's names and interface.

Each layer's `forward` keeps what its `backward` will need; `backward(dout)`
takes the gradient of the loss with respect to the layer's output and returns
the gradient with respect to its input, never modifying `dout`. Layers with
parameters also leave their gradients in `dW` and `db` (`dgamma`, `dbeta`).

Dropout and batch normalization (chapter 6.3-6.4) behave differently in
training and at test time: their `forward(x, train_flg=True)` takes the
book's flag (`uses_train_flg`), the other layers' `forward(x)` does not.

A layer kind is one class here, and declares everything every path needs
of it (`Layer` gives the defaults):

- `parameter_names` ("W", "b"; "gamma", "beta"): the network numbers them,
  layers of the same names together (a net's convolutions and affine layers
  give W1 b1 W2 b2 ...); `decayed_names`, those weight decay covers;
  `statistic_names`, what else training changes (batch norm's running
  mean and variance);
- `output_shape(input_shape)`, per sample: a bad combination (a filter
  larger than its input, a stride that does not fit) is a `ConfigError`
  naming the layer and the sizes;
- `kind` and `spec()`, its record in a model file, and `from_spec(spec,
  input_shape, make)`, the layer built from it (`make` draws the
  parameters: `sgdlab.nn.init.InitialParameters`);
- `uses_train_flg`, and `frozen()`: a context in which its training-mode
  forward passes all see one network (for a numerical gradient);
- the training step's forms (`sgdlab.engine`), on buffers of shape (rows,
  *shape) that the step allocates once: `forward_into(x, out, train, work)`
  writes the output into `out` (into `x` itself for a kind that is
  `in_place`) and returns it; `backward_into(x, out, dout, dx, grads, work)`
  writes the gradient for the input into `dx` (None for the first layer,
  whose input gradient nothing needs) and those for its parameters into
  `grads`, in `parameter_names`' order; `workspace(rows, input_shape,
  dtype, train)` makes what else it keeps between the two (None for most);
  `work_per_sample(input_shape)`, the values one sample's pass writes
  (its output, a convolution's columns, a pooling's windows), which the
  network bounds.

The activation layers are built from the definitions in
`sgdlab.nn.activations`: `Sigmoid()` and `Relu()` are the book's names,
`activation_layer("tanh")` makes the layer of any activation by name.
"""

import contextlib
import math

import numpy as np

from ..errors import ConfigError
from ..ranges import NON_NEGATIVE_INT, POSITIVE_INT, UNIT_INTERVAL, check_choice
from .activations import activation_names, get_activation
from .functions import softmax, softmax_cross_entropy
from .im2col import add_windows, col2im, conv_output_size, im2col, in_blocks, windows

BATCH_NORM_EPS = 1e-6  # the book's 10e-7, added to the variance before its square root
MAX_FEATURES = 1 << 24  # values per sample in any layer's output or padded input: 64 MB of float32 a sample
MAX_WINDOW = 32 * 32  # offsets in a filter or pooling window, each one pass of a loop (pooling's forms, col2im)

LAYER_KINDS = {}  # a spec's "type" -> its layer kind; activations are found by their names


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

    def work_per_sample(self, input_shape):
        """The values one sample's forward pass through this layer writes (its output, and a convolution's
        columns or a pooling's windows besides): the network bounds their sum, which bounds one sample's
        buffers and time."""
        return math.prod(self.output_shape(input_shape))


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


def layer_kind(spec):
    """The layer kind a specification names: one of `LAYER_KINDS`, or an activation's name."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ConfigError(f"a layer is specified by a dict with its 'type', such as {{'type': 'relu'}}, got {spec!r}")
    if spec["type"] in LAYER_KINDS:
        return LAYER_KINDS[spec["type"]]
    check_choice("a layer's type", spec["type"], (*LAYER_KINDS, *activation_names()))
    return ActivationLayer


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


class Affine(Layer):
    """out = x @ W + b, the fully connected layer; an (N, C, H, W) input is flattened to (N, C * H * W) rows
    and the gradient `backward` returns has the input's shape."""

    kind = "affine"
    batched_product = True
    parameter_names = ("W", "b")
    decayed_names = ("W",)

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.original_x_shape)

    def output_shape(self, input_shape):
        if math.prod(input_shape) != self.W.shape[0]:
            raise ConfigError(f"{self!r} takes {self.W.shape[0]} inputs, got samples of shape {tuple(input_shape)}")
        return (self.W.shape[1],)

    def spec(self):
        return {"type": self.kind, "output_size": self.W.shape[1]}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        output_size = spec_fields(spec, {"output_size": (POSITIVE_INT, None)})["output_size"]
        fan_in = math.prod(input_shape)
        return cls(make.weights((fan_in, output_size), fan_in), make.zeros(output_size))

    def forward_into(self, x, out, train, work):
        np.matmul(x.reshape(len(x), -1), self.W, out=out)
        out += self.b
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        dW, db = grads
        np.matmul(x.reshape(len(x), -1).T, dout, out=dW)
        np.add.reduce(dout, axis=0, out=db)  # (the ufunc's own reduce: np.sum costs more on arrays this small)
        if dx is not None:
            np.matmul(dout, self.W.T, out=dx.reshape(len(dx), -1))
        return dx

    def __repr__(self):
        return f"Affine({self.W.shape[0]} -> {self.W.shape[1]})"


class Convolution(Layer):
    """Chapter 7's convolution: FN filters W (FN, C, FH, FW) slid over (N, C, H, W) images at `stride`, after
    `pad` zeros on every side, plus a bias b (FN,) per filter; the output is (N, FN, OH, OW).

    `forward` is the book's: `im2col` makes one row per output position,
    one matrix product with the filters as columns gives every output, and
    `backward` reverses both (`col2im`), leaving `dW` and `db`. Unlike the
    book's, a filter larger than its input or a stride that does not fit is
    refused (`output_shape`) instead of silently truncated.
    """

    kind = "convolution"
    parameter_names = ("W", "b")
    decayed_names = ("W",)

    def __init__(self, W, b, stride=1, pad=0):
        if np.ndim(W) != 4 or np.shape(b) != np.shape(W)[:1]:
            raise ConfigError(f"a convolution takes filters W of shape (FN, C, FH, FW) and biases b of shape (FN,), "
                              f"got W of shape {np.shape(W)} and b of shape {np.shape(b)}")
        check_window("a convolution", "filter", *np.shape(W)[2:])
        self.W = W
        self.b = b
        self.stride = POSITIVE_INT.check("stride", stride)
        self.pad = NON_NEGATIVE_INT.check("pad", pad)
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None

    def output_shape(self, input_shape):
        FN, C, FH, FW = self.W.shape
        channels, H, W = image_shape(self, input_shape, self.pad)
        if channels != C:
            raise ConfigError(f"{self!r} takes {C}-channel images, got {channels} channels")
        return (FN, conv_output_size(H, FH, self.stride, self.pad, f"{self!r} (height)"),
                conv_output_size(W, FW, self.stride, self.pad, f"{self!r} (width)"))

    def work_per_sample(self, input_shape):
        """Its output, its im2col columns (C * FH * FW and a row of ones per output position) and its padded copy."""
        FN, C, FH, FW = self.W.shape
        _, out_h, out_w = self.output_shape(input_shape)
        return (FN + C * FH * FW + 1) * out_h * out_w + padded_size(input_shape, self.pad)

    def forward(self, x):
        FN, C, FH, FW = self.W.shape
        _, out_h, out_w = self.output_shape(x.shape[1:])
        self.x = x
        self.col = im2col(x, FH, FW, self.stride, self.pad)
        self.col_W = self.W.reshape(FN, -1).T
        out = self.col @ self.col_W + self.b
        return out.reshape(len(x), out_h, out_w, FN).transpose(0, 3, 1, 2)

    def backward(self, dout):
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        self.db = dout.sum(axis=0)
        self.dW = (self.col.T @ dout).T.reshape(FN, C, FH, FW)
        dcol = dout @ self.col_W.T
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)

    def spec(self):
        FN, _, FH, FW = self.W.shape
        if FH != FW:
            raise ConfigError(f"{self!r}: a network's convolutions have square filters")
        return {"type": self.kind, "filter_num": FN, "filter_size": FH, "stride": self.stride, "pad": self.pad}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        values = spec_fields(spec, {"filter_num": (POSITIVE_INT, None), "filter_size": (POSITIVE_INT, None),
                                    "stride": (POSITIVE_INT, 1), "pad": (NON_NEGATIVE_INT, 0)})
        channels = input_shape[0] if len(input_shape) == 3 else 1  # (output_shape refuses other shapes)
        FN, FS = values["filter_num"], values["filter_size"]
        W = make.weights((FN, channels, FS, FS), channels * FS * FS)
        return cls(W, make.zeros(FN), values["stride"], values["pad"])

    # The training step's forms. Each sample's windows are the columns of a (C * FH * FW + 1, OH * OW) matrix
    # whose last row is ones, so that one matrix product per sample with [W | b] (FN, C * FH * FW + 1) gives
    # the outputs, bias included, and the product of d out with the same columns gives [dW | db] at once. The
    # columns are one copy of a strided view of the (padded) input. With `blocks` (ph, pw), the tiling
    # windows of a max pooling that follows, the output positions (the columns) are ordered by their place
    # in those windows: each channel's (OH, OW) values held as ph * pw contiguous blocks of the pooled size,
    # which the pooling then reads whole (see `Pooling.blocks`).
    writes_blocks = True

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        FN, C, FH, FW = self.W.shape
        _, out_h, out_w = self.output_shape(input_shape)
        _, H, W = input_shape
        padded_shape = (rows, C, H + 2 * self.pad, W + 2 * self.pad)
        col = np.empty((rows, C * FH * FW + 1, out_h * out_w), dtype)
        col[:, -1] = 1
        work = {"col": col, "padded": np.zeros(padded_shape, dtype) if self.pad else None, "blocks": blocks,
                "weights": np.empty((FN, C * FH * FW + 1), dtype)}
        if train:
            work["per_sample"] = np.empty((rows, FN, C * FH * FW + 1), dtype)
            work["dcol"] = np.empty((rows, C * FH * FW, out_h * out_w), dtype)
            work["dpadded"] = np.empty(padded_shape, dtype) if self.pad else None
        return work

    def _columns(self, x, work):
        """x's windows into work["col"] (but its row of ones): (rows, C, FH, FW, positions)."""
        FN, C, FH, FW = self.W.shape
        source = x
        if self.pad:
            source = work["padded"][:len(x)]
            source[:, :, self.pad:-self.pad, self.pad:-self.pad] = x
        view = windows(source, FH, FW, self.stride)  # (rows, C, OH, OW, FH, FW)
        col = work["col"][:len(x)]
        if work["blocks"] is None:
            col[:, :-1].reshape(len(x), C, FH, FW, *view.shape[2:4])[...] = view.transpose(0, 1, 4, 5, 2, 3)
        else:
            blocked = in_blocks(view, work["blocks"])  # (rows, C, ph, pw, OH/ph, OW/pw, FH, FW)
            col[:, :-1].reshape(len(x), C, FH, FW, *blocked.shape[2:6])[...] = blocked.transpose(0, 1, 6, 7, 2, 3, 4, 5)
        return col

    def forward_into(self, x, out, train, work):
        col = self._columns(x, work)
        weights = work["weights"]
        weights[:, :-1] = self.W.reshape(len(weights), -1)
        weights[:, -1] = self.b
        np.matmul(weights, col, out=out.reshape(len(out), len(weights), -1))
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        FN, C, FH, FW = self.W.shape
        dW, db = grads
        rows = len(x)
        dout3 = dout.reshape(rows, FN, -1)
        per_sample = work["per_sample"][:rows]
        np.matmul(dout3, work["col"][:rows].transpose(0, 2, 1), out=per_sample)  # each sample's [dW | db]
        np.add.reduce(per_sample[:, :, :-1], axis=0, out=dW.reshape(FN, -1))
        np.add.reduce(per_sample[:, :, -1], axis=0, out=db)
        if dx is None:
            return None
        dcol = work["dcol"][:rows]
        np.matmul(self.W.reshape(FN, -1).T, dout3, out=dcol)
        target = work["dpadded"][:rows] if self.pad else dx
        target.fill(0)
        add_windows(target, dcol.reshape(rows, C, FH, FW, *dout.shape[2:]) if work["blocks"] is None else
                    dcol.reshape(rows, C, FH, FW, *work["blocks"], -1), self.stride, work["blocks"], dout.shape[2:])
        if self.pad:
            dx[...] = target[:, :, self.pad:-self.pad, self.pad:-self.pad]
        return dx

    def __repr__(self):
        FN, C, FH, FW = self.W.shape
        return f"Convolution({FN} filters {C}x{FH}x{FW}, stride {self.stride}, pad {self.pad})"


class Pooling(Layer):
    """Chapter 7's max pooling: each channel's pool_h x pool_w windows, `stride` apart, give their maximum.

    The book's signature and defaults (its repository's `Pooling(pool_h,
    pool_w, stride=2, pad=0)`). `backward` passes each output's gradient to
    the input its window took the maximum from: the first one, in the
    window's row-major order, where several tie (the book's `argmax`).
    The book's flaws fixed: padding is -inf, not 0 (a zero pad would win a
    window of negative values and take its gradient), its output size
    accounts for the padding, and a window left over at the edge (a stride
    that does not fit) is refused rather than silently dropped.
    """

    kind = "pooling"
    takes_max = True

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = POSITIVE_INT.check("pool_h", pool_h)
        self.pool_w = POSITIVE_INT.check("pool_w", pool_w)
        self.stride = POSITIVE_INT.check("stride", stride)
        self.pad = NON_NEGATIVE_INT.check("pad", pad)
        check_window(repr(self), "window", self.pool_h, self.pool_w)
        if self.pad >= min(self.pool_h, self.pool_w):
            raise ConfigError(f"{self!r}: the padding must be smaller than the window, or some window would hold "
                              "padding alone")
        self.x = None
        self.arg_max = None

    def output_shape(self, input_shape):
        C, H, W = image_shape(self, input_shape, self.pad)
        return (C, conv_output_size(H, self.pool_h, self.stride, self.pad, f"{self!r} (height)"),
                conv_output_size(W, self.pool_w, self.stride, self.pad, f"{self!r} (width)"))

    def work_per_sample(self, input_shape):
        """Its output, every window's values (pool_h * pool_w per output) and its padded copy."""
        C, out_h, out_w = self.output_shape(input_shape)
        return C * out_h * out_w * (self.pool_h * self.pool_w + 1) + padded_size(input_shape, self.pad)

    def _padded(self, x):
        if not self.pad:
            return x
        return np.pad(x, [(0, 0), (0, 0), (self.pad, self.pad), (self.pad, self.pad)], constant_values=-np.inf)

    def forward(self, x):
        C, out_h, out_w = self.output_shape(x.shape[1:])
        col = im2col(self._padded(x), self.pool_h, self.pool_w, self.stride).reshape(-1, self.pool_h * self.pool_w)
        self.x = x
        self.arg_max = np.argmax(col, axis=1)
        out = col[np.arange(len(col)), self.arg_max]
        return out.reshape(len(x), out_h, out_w, C).transpose(0, 3, 1, 2)

    def backward(self, dout):
        N, C, H, W = self.x.shape
        pool_size = self.pool_h * self.pool_w
        dout = dout.transpose(0, 2, 3, 1)
        dmax = np.zeros((dout.size, pool_size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max] = dout.ravel()
        dcol = dmax.reshape(-1, C * pool_size)
        padded_shape = (N, C, H + 2 * self.pad, W + 2 * self.pad)
        dx = col2im(dcol, padded_shape, self.pool_h, self.pool_w, self.stride)
        return dx[:, :, self.pad:self.pad + H, self.pad:self.pad + W]

    def spec(self):
        if self.pool_h != self.pool_w:
            raise ConfigError(f"{self!r}: a network's pooling windows are square")
        return {"type": self.kind, "pool_size": self.pool_h, "stride": self.stride, "pad": self.pad}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        """{"type": "pooling", "pool_size": 2, "stride": 2, "pad": 0}, square windows; the class's defaults."""
        values = spec_fields(spec, {"pool_size": (POSITIVE_INT, None), "stride": (POSITIVE_INT, 2),
                                    "pad": (NON_NEGATIVE_INT, 0)})
        return cls(values["pool_size"], values["pool_size"], values["stride"], values["pad"])

    # The training step's forms: no window is copied. Each of the pool_h * pool_w offsets in the window is one
    # view of the (padded) input, (rows, C, OH, OW); the maximum is taken offset by offset, and in training the
    # offset it came from is kept (the first of equal ones, as the book's argmax): backward then writes each
    # offset's share of the gradient through the same views. Where the windows tile the input and the layer
    # before lays its output out in `blocks`, each view is a contiguous block rather than a strided one.
    @property
    def blocks(self):
        """(pool_h, pool_w) when the windows tile the input (stride the window's size, no padding), else None."""
        return (self.pool_h, self.pool_w) if self.stride == self.pool_h == self.pool_w and not self.pad else None

    def offset_views(self, images, out_h, out_w, blocked=False):
        """The (rows, C, OH, OW) view of `images` at each window offset (i, j), row-major: images[:, :,
        i + stride * y, j + stride * x], or, `blocked`, block i * pool_w + j of the images' values."""
        if blocked:
            blocks = images.reshape(len(images), images.shape[1], self.pool_h * self.pool_w, out_h, out_w)
            return [blocks[:, :, k] for k in range(self.pool_h * self.pool_w)]
        s = self.stride
        return [images[:, :, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s]
                for i in range(self.pool_h) for j in range(self.pool_w)]

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        C, out_h, out_w = self.output_shape(input_shape)
        _, H, W = input_shape
        padded_shape = (rows, C, H + 2 * self.pad, W + 2 * self.pad)
        work = {"padded": np.full(padded_shape, -np.inf, dtype) if self.pad else None, "blocked": blocks is not None}
        if train:
            index = np.uint8 if self.pool_h * self.pool_w <= 256 else np.intp
            work["arg_max"], work["later"] = np.empty((rows, C, out_h, out_w), index), np.empty((rows, C, out_h, out_w), index)
            work["greater"] = np.empty((rows, C, out_h, out_w), bool)
            work["share"] = np.empty((rows, C, out_h, out_w), dtype)
            work["dpadded"] = np.empty(padded_shape, dtype) if self.pad else None
        return work

    def _source(self, images, padded):
        """`images` as the windows see them: inside a buffer padded with `padded`'s border, or as they are."""
        if not self.pad:
            return images
        padded = padded[:len(images)]
        padded[:, :, self.pad:-self.pad, self.pad:-self.pad] = images
        return padded

    def forward_into(self, x, out, train, work):
        rows = len(x)
        views = self.offset_views(self._source(x, work["padded"]), *out.shape[2:], work["blocked"])
        np.copyto(out, views[0])
        if not train:
            for view in views[1:]:
                np.maximum(out, view, out=out)
            return out
        arg_max, greater, later = work["arg_max"][:rows], work["greater"][:rows], work["later"][:rows]
        arg_max.fill(0)
        for k, view in enumerate(views[1:], start=1):
            np.greater(view, out, out=greater)  # strictly: an equal later value leaves the first maximum
            np.maximum(out, view, out=out)
            # k where this offset wins, else 0; no later offset has won yet, so the larger is the winner
            np.multiply(greater, later.dtype.type(k), out=later)
            np.maximum(arg_max, later, out=arg_max)
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        if dx is None:
            return None
        rows = len(x)
        arg_max, share = work["arg_max"][:rows], work["share"][:rows]
        if work["blocked"]:  # dx's blocks at once: 1.0 in block k where offset k won, then times dout
            blocks = dx.reshape(rows, dx.shape[1], self.pool_h * self.pool_w, *dout.shape[2:])
            offsets = np.arange(self.pool_h * self.pool_w, dtype=arg_max.dtype)[:, None, None]
            np.equal(arg_max[:, :, None], offsets, out=blocks, casting="unsafe")
            blocks *= dout[:, :, None]
            return dx
        target = work["dpadded"][:rows] if self.pad else dx
        tiled = self.blocks is not None  # every input in exactly one window: each view is written, never added to
        if not tiled:
            target.fill(0)
        for k, view in enumerate(self.offset_views(target, *dout.shape[2:])):
            np.equal(arg_max, k, out=share, casting="unsafe")  # 1.0 where offset k won, else 0.0
            if tiled:
                np.multiply(dout, share, out=view)
            else:
                share *= dout
                view += share
        if self.pad:
            dx[...] = target[:, :, self.pad:-self.pad, self.pad:-self.pad]
        return dx

    def __repr__(self):
        return f"Pooling({self.pool_h}x{self.pool_w}, stride {self.stride}, pad {self.pad})"


class ActivationLayer(Layer):
    """out = f(x) for an `Activation` f; its backward needs only the output it kept."""

    def __init__(self, activation):
        self.activation = activation
        self.out = None

    def forward(self, x):
        self.out = self.activation.forward(x)
        return self.out

    def backward(self, dout):
        return self.activation.backward(dout, self.out)

    @property
    def commutes_with_max(self):
        return self.activation.commutes_with_max

    def spec(self):
        return {"type": self.activation.name}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        spec_fields(spec, {})
        return activation_layer(spec["type"])

    in_place = True  # its backward needs only the output, so the output can take the input's place

    def forward_into(self, x, out, train, work):
        self.activation.forward_in_place(x)
        return x

    def backward_into(self, x, out, dout, dx, grads, work):
        self.activation.backward_into(dout, out, dx)
        return dx

    def __repr__(self):
        return f"{self.activation.name.capitalize()}()"  # the book's layer names: Sigmoid(), Relu(), Tanh()


def activation_layer(name):
    """The layer of the activation called `name` ("sigmoid", "relu", "tanh", ...): the book's class where it
    names one (`Sigmoid`, `Relu`, so that a network's layers are what the book's code expects of them)."""
    book_class = BOOK_ACTIVATION_LAYERS.get(name)
    return book_class() if book_class is not None else ActivationLayer(get_activation(name))


class Sigmoid(ActivationLayer):
    """out = sigmoid(x); its local derivative out * (1 - out) needs only the output."""

    def __init__(self):
        super().__init__(get_activation("sigmoid"))


class Relu(ActivationLayer):
    """out = max(0, x); the gradient passes only where the input was positive."""

    def __init__(self):
        super().__init__(get_activation("relu"))


BOOK_ACTIVATION_LAYERS = {"sigmoid": Sigmoid, "relu": Relu}


class Dropout(Layer):
    """Chapter 6.4.3's dropout: in training, each unit is kept where a uniform draw exceeds `dropout_ratio`
    and zeroed elsewhere (a fresh mask per forward pass, drawn from `rng`); at test time every unit is kept
    and the output scaled by (1 - dropout_ratio), the fraction of units training kept on average.

    This is the book's form. "Inverted" dropout (PyTorch's, Keras's) instead divides the kept units by
    (1 - ratio) in training and leaves test time alone: the same expected output, but its test-time
    network is the plain one, while here the test-time network carries the scale.
    """

    kind = "dropout"
    in_place = True
    per_sample = False  # its masks are drawn for the whole batch at once
    uses_train_flg = True

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.dropout_ratio = UNIT_INTERVAL.check("dropout_ratio", dropout_ratio)  # at 1, nothing would pass
        self.rng = np.random.default_rng(rng)
        self.mask = None
        self.is_frozen = False  # inside `frozen()`: keep the mask drawn first

    def draw_mask(self, shape):
        """A fresh mask: True for the units kept."""
        return self.rng.random(shape) > self.dropout_ratio

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        if not (self.is_frozen and self.mask is not None):
            self.mask = self.draw_mask(x.shape)
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask

    @contextlib.contextmanager
    def frozen(self):
        self.is_frozen, self.mask = True, None
        try:
            yield
        finally:
            self.is_frozen = False

    def spec(self):
        return {"type": self.kind, "ratio": self.dropout_ratio}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        return cls(spec_fields(spec, {"ratio": (UNIT_INTERVAL, 0.5)})["ratio"], make.rng)

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        if not train:
            return None
        return np.empty((rows, *input_shape)), np.empty((rows, *input_shape), dtype=bool)  # the draws, the mask

    def forward_into(self, x, out, train, work):
        if not train:
            x *= 1.0 - self.dropout_ratio
            return x
        draws, mask = work
        self.rng.random(out=draws[:len(x)])  # the same draws as draw_mask's
        np.greater(draws[:len(x)], self.dropout_ratio, out=mask[:len(x)])
        x *= mask[:len(x)]
        return x

    def backward_into(self, x, out, dout, dx, grads, work):
        np.multiply(dout, work[1][:len(dout)], out=dx)
        return dx

    def __repr__(self):
        return f"Dropout({self.dropout_ratio})"


def batch_normalize(x, axis=0):
    """(xn, xc, std, mean, var): each feature of `x` normalised by the mean and variance over the batch's
    `axis` (the variance of the batch itself, not the unbiased estimate), and the steps on the way."""
    mean = x.mean(axis=axis, keepdims=True)
    xc = x - mean
    var = np.mean(xc ** 2, axis=axis, keepdims=True)
    std = np.sqrt(var + BATCH_NORM_EPS)
    return xc / std, xc, std, mean, var


class BatchNormalization(Layer):
    """Chapter 6.3's batch normalization (Ioffe and Szegedy 2015), per feature.

    In training each feature is normalised by the batch's own mean and
    variance, xn = (x - mean) / sqrt(var + 1e-6), then scaled and shifted,
    out = gamma * xn + beta, with `gamma` and `beta` learned; the running mean
    and variance (starting at zero) follow the batches' with `momentum`, and
    test time normalises by them instead. Backward leaves `dgamma` and `dbeta`.
    After a convolution, as in the book, every element of the flattened
    feature map is a feature of its own.
    """

    kind = "batch_norm"
    uses_train_flg = True
    per_sample = False
    parameter_names = ("gamma", "beta")
    statistic_names = ("running_mean", "running_var")

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean = np.zeros_like(gamma) if running_mean is None else running_mean
        self.running_var = np.zeros_like(gamma) if running_var is None else running_var
        self.is_frozen = False  # inside `frozen()`: leave the running statistics as they are
        self.input_shape = None
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        if train_flg:
            xn, self.xc, self.std, mean, var = batch_normalize(x)
            self.batch_size, self.xn = x.shape[0], xn
            self.follow(mean[0], var[0])
        else:
            xn = (x - self.running_mean) / np.sqrt(self.running_var + BATCH_NORM_EPS)
        return (self.gamma * xn + self.beta).reshape(self.input_shape)

    def backward(self, dout):
        dout = dout.reshape(dout.shape[0], -1)
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        return (dxc - dmu / self.batch_size).reshape(self.input_shape)

    def follow(self, mean, var):
        """running <- momentum * running + (1 - momentum) * batch, in place (the network's copies share them)."""
        if self.is_frozen:
            return
        for running, batch in ((self.running_mean, mean), (self.running_var, var)):
            running *= self.momentum
            running += (1 - self.momentum) * batch

    @contextlib.contextmanager
    def frozen(self):
        self.is_frozen = True
        try:
            yield
        finally:
            self.is_frozen = False

    def output_shape(self, input_shape):
        if math.prod(input_shape) != self.gamma.size:
            raise ConfigError(f"{self!r} normalises {self.gamma.size} features, got samples of shape "
                              f"{tuple(input_shape)}")
        return tuple(input_shape)

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        spec_fields(spec, {})
        features = math.prod(input_shape)
        return cls(make.ones(features), make.zeros(features), running_mean=make.zeros(features),
                   running_var=make.zeros(features))

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        if not train:
            return None
        width = math.prod(input_shape)
        return np.empty((rows, width), dtype), np.empty(width, dtype), np.empty(width, dtype)  # xn, mean, std

    def forward_into(self, x, out, train, work):
        x, flat = x.reshape(len(x), -1), out.reshape(len(out), -1)
        if not train:
            np.subtract(x, self.running_mean, out=flat)
            flat /= np.sqrt(self.running_var + BATCH_NORM_EPS)
        else:
            xn, mean, std = work
            np.add.reduce(x, axis=0, out=mean)
            mean /= len(x)
            np.subtract(x, mean, out=xn)
            np.multiply(xn, xn, out=flat)
            np.add.reduce(flat, axis=0, out=std)
            std /= len(x)
            self.follow(mean, std)  # std holds the variance until here
            std += BATCH_NORM_EPS
            np.sqrt(std, out=std)
            xn /= std
            np.copyto(flat, xn)
        flat *= self.gamma
        flat += self.beta
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        # The book's backward, its terms collected: dx = gamma / std * (dout - (dbeta + xn * dgamma) / N).
        dgamma, dbeta = grads
        xn, _, std = work
        dout, flat = dout.reshape(len(dout), -1), dx.reshape(len(dx), -1)
        np.add.reduce(dout, axis=0, out=dbeta)
        np.multiply(xn, dout, out=flat)
        np.add.reduce(flat, axis=0, out=dgamma)
        np.multiply(xn, dgamma, out=flat)
        flat += dbeta
        flat /= -len(flat)
        flat += dout
        flat *= self.gamma / std
        return dx

    def __repr__(self):
        return "BatchNormalization()"


@contextlib.contextmanager
def frozen_training(layers):
    """Training-mode forward passes that all see one network: each dropout mask is drawn once, on the first
    pass, and kept; running statistics stay as they are. A numerical gradient's nudges need this, or each
    loss would be of a differently masked network (and every nudge would move the statistics)."""
    with contextlib.ExitStack() as stack:
        for layer in layers:
            stack.enter_context(layer.frozen())
        yield


class SoftmaxWithLoss:
    """Softmax followed by mean cross-entropy, fused so that backward is simply (y - t) / N.

    `forward(x, t)` takes scores and label or one-hot targets and returns the
    scalar loss; `backward(dout=1)` returns d loss / d scores. The training
    step computes the same in place: `functions.softmax_cross_entropy_in_place`.
    """

    def __init__(self):
        self.y = None
        self.t = None
        self.loss = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = softmax_cross_entropy(x, t)
        return self.loss

    def backward(self, dout=1.0):
        batch_size = self.y.shape[0]
        dx = self.y.copy()
        if self.t.size == self.y.size:  # one-hot targets
            dx -= self.t
        else:
            dx[np.arange(batch_size), self.t] -= 1
        return dx * (dout / batch_size)

    def __repr__(self):
        return "SoftmaxWithLoss()"
