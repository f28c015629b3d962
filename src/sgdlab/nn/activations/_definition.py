"""What an activation defines, once, for every path that computes it."""


class Activation:
    """A hidden activation y = f(z), applied elementwise.

    The book's layers use `forward` and `backward`; the training step uses
    `forward_in_place` and `backward_into` on buffers it allocates once;
    the fast numerical gradient uses `change`, the exact change of y when z
    moves by e. Every derivative is expressed through the output y (what the
    layers keep), and `change` through what `change_state` keeps of z and y.
    """

    name = None  # the module's name: how configs, the command line and model files call it
    slope_bound = None  # |f(z + e) - f(z)| <= slope_bound * |e| for every z and e

    def forward(self, z):
        """f(z) as a new array: the book's function."""
        raise NotImplementedError

    def forward_in_place(self, z):
        """z <- f(z), for the training step's buffers."""
        raise NotImplementedError

    def backward(self, dout, out):
        """dout * f'(z) as a new array, from the output `out` = f(z)."""
        raise NotImplementedError

    def backward_into(self, dout, out, dx):
        """dx <- dout * f'(z), from `out` = f(z), into the buffer `dx` (not `dout` itself)."""
        raise NotImplementedError

    def change_state(self, z, out):
        """The arrays, per (sample, unit), that `change` reads: a tuple of arrays shaped like z."""
        raise NotImplementedError

    def change(self, state, e):
        """f(z + e) - f(z) for rows of `change_state`, one e per row.

        Where the activation is curved, computed without subtracting two
        outputs: for a small e those agree in most of their digits (near
        f = 1 all but a few), and the numerical gradient divides what is left
        by h. Sigmoid's and tanh's addition formulas keep the error within a
        few float64 roundings of |e|; relu's change, e or 0, is rounded as
        z + e is.
        """
        raise NotImplementedError

    def linear_pieces(self, z):
        """(slope, reach) per element of z where f is linear around it, or None where f is curved.

        On [z - reach, z + reach], f(z + e) - f(z) = slope * e exactly, so
        the fast numerical gradient can carry a nudge through such a unit as
        through an affine layer. A piecewise-linear activation overrides it.
        """
        return None

    def __repr__(self):
        return f"get_activation({self.name!r})"


def rational_change(y, slope, q):
    """slope * q / (1 + y * q): the exact change of an activation whose addition formula has this form.

    sigmoid (q = expm1(e), slope = y (1 - y)) and tanh (q = tanh(e), slope =
    1 - y^2) both do; nothing in it cancels. `y` and `slope` are rows of
    (sample, unit) values, `q` one column per row.
    """
    denominator = y * q
    denominator += 1.0
    moved = slope * q
    moved /= denominator
    return moved
