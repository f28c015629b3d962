"""What an activation defines, once, for every path that computes it."""

import abc


class Activation(abc.ABC):
    """A hidden activation y = f(z), applied elementwise.

    The book needs two members, and they are all an activation must define:
    `forward`, the function, and `backward`, its derivative through the
    output y (what the layers keep). Everything else has a default that gives
    the same numbers from those two; an activation overrides it only to be
    faster or more precise:

    - `forward_in_place` and `backward_into`, the training step's forms on
      buffers it allocates once (the defaults write `forward` and `backward`
      into them);
    - `change_state` and `change`, the exact change f(z + e) - f(z) that the
      fast numerical gradient carries through a unit (the default subtracts
      two outputs, as the textbook's losses are subtracted; sigmoid and tanh
      use addition formulas that keep every digit);
    - `slope_bound`, a bound on |f'| that lets the fast numerical gradient sum
      a series instead of recomputing the layers (None: recompute);
    - `linear_pieces`, for an activation made of linear pieces (relu): the
      fast numerical gradient then carries nudges through it linearly, and the
      gradient check finds the nudges that cross its kinks (the default,
      None, treats it as curved everywhere: exact, but a kink goes unseen).
    """

    slope_bound = None  # |f(z + e) - f(z)| <= slope_bound * |e| for every z and e, where known
    # f(max(a, b)) == max(f(a), f(b)) exactly, and where f(a) == f(b) with a != b the gradient through both is
    # zero: the training step may then apply f after a max pooling instead of before it (fewer values)
    commutes_with_max = False

    @property
    def name(self):
        """The module's name: how configs, the command line and model files call it."""
        return type(self).__module__.rpartition(".")[2]

    @abc.abstractmethod
    def forward(self, z):
        """f(z) as a new array: the book's function."""

    @abc.abstractmethod
    def backward(self, dout, out):
        """dout * f'(z) as a new array, from the output `out` = f(z)."""

    def forward_in_place(self, z):
        """z <- f(z), for the training step's buffers."""
        z[...] = self.forward(z)

    def backward_into(self, dout, out, dx):
        """dx <- dout * f'(z), from `out` = f(z), into the buffer `dx` (not `dout` itself)."""
        dx[...] = self.backward(dout, out)

    def change_state(self, z, out):
        """The arrays, per (sample, unit), that `change` reads: a tuple of arrays shaped like z."""
        return z, out

    def change(self, state, e):
        """f(z + e) - f(z) for rows of `change_state`, one e per row.

        The default subtracts the two outputs, which for a small e agree in
        most of their digits: as exact as the textbook's difference of two
        losses. Where the activation is curved, an override can compute it
        without that cancellation: sigmoid's and tanh's addition formulas keep
        the error within a few float64 roundings of |e|; relu's change, e or
        0, is rounded as z + e is.
        """
        z, out = state
        return self.forward(z + e[:, None]) - out

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
