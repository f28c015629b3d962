"""Chapter 6.3's batch normalization."""

import contextlib
import math

import numpy as np

from ...errors import ConfigError
from .base import Layer, spec_fields

BATCH_NORM_EPS = 1e-6  # the book's 10e-7, added to the variance before its square root


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

    # The fast numerical gradient's forms (see `Layer.carry`): each element normalised over the batch (axis 1
    # of the carried values), per nudge; gamma[p] moves feature p by e times its normalised value, beta[p] by e.
    channelwise = True

    def reference_state(self, x, out, find_kinks):
        return self.xn.copy()  # (N, features): what the reference pass normalised to

    def carry(self, moved, x, out, state, channel):
        features = moved.shape[2:]
        gamma = np.asarray(self.gamma, np.float64).reshape(x.shape[1:])
        beta = np.asarray(self.beta, np.float64).reshape(x.shape[1:])
        if channel is not None:
            gamma, beta = gamma[channel:channel + 1], beta[channel:channel + 1]
        normalized = batch_normalize(moved, axis=1)[0]
        return gamma.reshape(features) * normalized + beta.reshape(features), None

    def nudged(self, name, entries, e, x, out, prepared, channel):
        N = len(out)
        flat = out.reshape(N, -1)
        sample_shape = out.shape[1:]
        if channel is None:
            moved = np.repeat(flat[None], len(entries), axis=0)
            position = entries
        else:
            per_channel = flat.size // N // sample_shape[0]
            moved = np.repeat(flat[None, :, channel * per_channel:(channel + 1) * per_channel], len(entries), axis=0)
            position = entries - channel * per_channel
            sample_shape = (1, *sample_shape[1:])
        shift = e[:, None] * (1.0 if name == "beta" else prepared[:, entries].T)
        moved[np.arange(len(entries)), :, position] += shift
        return moved.reshape(len(entries), N, *sample_shape)

    def follow_batch(self, x):
        _, _, _, mean, var = batch_normalize(np.asarray(x, np.float64).reshape(len(x), -1))
        self.follow(mean[0].astype(self.gamma.dtype), var[0].astype(self.gamma.dtype))

    def __repr__(self):
        return "BatchNormalization()"
