"""An independent transcription of the book's chapter-8 network (oreilly-japan/deep-learning-from-scratch,
ch08/deep_convnet.py and common/layers.py's Dropout, as of commit 07b1161), built from the chapter-7 layers of
`book_chapter7.py`. Only its random numbers differ: `randn(*shape)` draws the weights and `rand(*shape)` the
dropout masks (the book's np.random.randn and np.random.rand, its defaults), so that a test can give both the
generator sgdlab draws from."""

import numpy as np

from tests.nn.book_chapter7 import BookAffine, BookConvolution, BookPooling, BookRelu, BookSoftmaxWithLoss

BOOK_CONV_PARAMS = [{"filter_num": filters, "filter_size": 3, "pad": pad, "stride": 1}
                    for filters, pad in ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1))]
BOOK_PARAMETER_LAYERS = (0, 2, 5, 7, 10, 12, 15, 18)  # the positions of W1..W8's layers, as the book lists them


class BookDropout:
    def __init__(self, dropout_ratio=0.5, rand=np.random.rand):
        self.dropout_ratio, self.rand = dropout_ratio, rand

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        self.mask = self.rand(*x.shape) > self.dropout_ratio
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class BookDeepConvNet:
    """ch08/deep_convnet.py at its default sizes (the book's code fixes 16, 32, 64 filters and 64*4*4 inputs of
    the hidden affine layer in its fan-ins): conv relu conv relu pool, three times, then affine relu dropout
    affine dropout, and the softmax."""

    def __init__(self, input_dim=(1, 28, 28), conv_params=BOOK_CONV_PARAMS, hidden_size=50, output_size=10,
                 randn=np.random.randn, rand=np.random.rand):
        # each layer's inputs per output unit, listed by hand as the book does (its TODO: compute them)
        pre_node_nums = np.array([1 * 3 * 3, 16 * 3 * 3, 16 * 3 * 3, 32 * 3 * 3, 32 * 3 * 3, 64 * 3 * 3, 64 * 4 * 4,
                                  hidden_size])
        self.weight_init_scales = np.sqrt(2.0 / pre_node_nums)
        self.params = {}
        channels = input_dim[0]
        for idx, conv_param in enumerate(conv_params):
            size = conv_param["filter_size"]
            self.params[f"W{idx + 1}"] = self.weight_init_scales[idx] * randn(conv_param["filter_num"], channels,
                                                                              size, size)
            self.params[f"b{idx + 1}"] = np.zeros(conv_param["filter_num"])
            channels = conv_param["filter_num"]
        self.params["W7"] = self.weight_init_scales[6] * randn(64 * 4 * 4, hidden_size)
        self.params["b7"] = np.zeros(hidden_size)
        self.params["W8"] = self.weight_init_scales[7] * randn(hidden_size, output_size)
        self.params["b8"] = np.zeros(output_size)

        def conv(number):
            param = conv_params[number - 1]
            return BookConvolution(self.params[f"W{number}"], self.params[f"b{number}"], param["stride"],
                                   param["pad"])

        self.layers = []
        for first in (1, 3, 5):
            self.layers += [conv(first), BookRelu(), conv(first + 1), BookRelu(), BookPooling(2, 2, stride=2)]
        self.layers += [BookAffine(self.params["W7"], self.params["b7"]), BookRelu(), BookDropout(0.5, rand),
                        BookAffine(self.params["W8"], self.params["b8"]), BookDropout(0.5, rand)]
        self.last_layer = BookSoftmaxWithLoss()

    def predict(self, x, train_flg=False):
        for layer in self.layers:
            x = layer.forward(x, train_flg) if isinstance(layer, BookDropout) else layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last_layer.forward(self.predict(x, train_flg=True), t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {}
        for number, position in enumerate(BOOK_PARAMETER_LAYERS, start=1):
            grads[f"W{number}"] = self.layers[position].dW
            grads[f"b{number}"] = self.layers[position].db
        return grads

    def load_params(self, params):
        """The book's load_params, from a dict rather than its pickle."""
        for key, value in params.items():
            self.params[key] = value
        for number, position in enumerate(BOOK_PARAMETER_LAYERS, start=1):
            self.layers[position].W = self.params[f"W{number}"]
            self.layers[position].b = self.params[f"b{number}"]
