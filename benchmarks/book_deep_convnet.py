"""Chapter 8's DeepConvNet trained as the book's code trains it: the baseline sgdlab's deep net is timed against.

Book style on purpose, as `ch08/deep_convnet.py` and `common/layers.py`'s
`Dropout` write them: its layers in a list, the dropouts told the training
flag by `isinstance`, masks drawn with `np.random.rand`, He scales from the
fan-ins the book lists by hand, the weights drawn with NumPy's global
`np.random.randn` (float64 arithmetic). The rest (im2col, Convolution,
Pooling, Affine, Relu, SoftmaxWithLoss, Adam and the Trainer) is chapter 7's
transcription in `book_convnet.py`, the book's same `common/` files.

Left out: `save_params` and `load_params` (pickle).
"""

import numpy as np

from book_convnet import Adam, Affine, Convolution, Pooling, Relu, SoftmaxWithLoss, Trainer  # noqa: F401 (Adam, Trainer: for callers)


# --- common/layers.py ---------------------------------------------------------------------------

class Dropout:
    """http://arxiv.org/abs/1207.0580"""

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


# --- ch08/deep_convnet.py -----------------------------------------------------------------------

class DeepConvNet:
    """conv - relu - conv - relu - pool - conv - relu - conv - relu - pool - conv - relu - conv - relu - pool -
    affine - relu - dropout - affine - dropout - softmax"""

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1={"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
                 conv_param_2={"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
                 conv_param_3={"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
                 conv_param_4={"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
                 conv_param_5={"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
                 conv_param_6={"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
                 hidden_size=50, output_size=10):
        # each layer's inputs per neuron (the book's TODO: computed by hand)
        pre_node_nums = np.array([1 * 3 * 3, 16 * 3 * 3, 16 * 3 * 3, 32 * 3 * 3, 32 * 3 * 3, 64 * 3 * 3, 64 * 4 * 4,
                                  hidden_size])
        weight_init_scales = np.sqrt(2.0 / pre_node_nums)  # He, for ReLU

        self.params = {}
        pre_channel_num = input_dim[0]
        conv_params = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6]
        for idx, conv_param in enumerate(conv_params):
            self.params["W" + str(idx + 1)] = weight_init_scales[idx] * np.random.randn(
                conv_param["filter_num"], pre_channel_num, conv_param["filter_size"], conv_param["filter_size"])
            self.params["b" + str(idx + 1)] = np.zeros(conv_param["filter_num"])
            pre_channel_num = conv_param["filter_num"]
        self.params["W7"] = weight_init_scales[6] * np.random.randn(64 * 4 * 4, hidden_size)
        self.params["b7"] = np.zeros(hidden_size)
        self.params["W8"] = weight_init_scales[7] * np.random.randn(hidden_size, output_size)
        self.params["b8"] = np.zeros(output_size)

        self.layers = []
        for idx, conv_param in enumerate(conv_params):
            self.layers.append(Convolution(self.params["W" + str(idx + 1)], self.params["b" + str(idx + 1)],
                                           conv_param["stride"], conv_param["pad"]))
            self.layers.append(Relu())
            if idx % 2 == 1:
                self.layers.append(Pooling(pool_h=2, pool_w=2, stride=2))
        self.layers.append(Affine(self.params["W7"], self.params["b7"]))
        self.layers.append(Relu())
        self.layers.append(Dropout(0.5))
        self.layers.append(Affine(self.params["W8"], self.params["b8"]))
        self.layers.append(Dropout(0.5))

        self.last_layer = SoftmaxWithLoss()

    def predict(self, x, train_flg=False):
        for layer in self.layers:
            if isinstance(layer, Dropout):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x, train_flg=True)
        return self.last_layer.forward(y, t)

    def accuracy(self, x, t, batch_size=100):
        if t.ndim != 1:
            t = np.argmax(t, axis=1)

        acc = 0.0
        for i in range(int(x.shape[0] / batch_size)):
            tx = x[i * batch_size:(i + 1) * batch_size]
            tt = t[i * batch_size:(i + 1) * batch_size]
            y = self.predict(tx, train_flg=False)
            y = np.argmax(y, axis=1)
            acc += np.sum(y == tt)

        return acc / x.shape[0]

    def gradient(self, x, t):
        self.loss(x, t)  # forward

        dout = 1  # backward
        dout = self.last_layer.backward(dout)

        tmp_layers = self.layers.copy()
        tmp_layers.reverse()
        for layer in tmp_layers:
            dout = layer.backward(dout)

        grads = {}
        for i, layer_idx in enumerate((0, 2, 5, 7, 10, 12, 15, 18)):
            grads["W" + str(i + 1)] = self.layers[layer_idx].dW
            grads["b" + str(i + 1)] = self.layers[layer_idx].db
        return grads
