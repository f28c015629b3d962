"""The building blocks of backpropagation, with the book's names and interface.

Each layer's `forward` keeps what its `backward` will need; `backward(dout)`
takes the gradient of the loss with respect to the layer's output and returns
the gradient with respect to its input, never modifying `dout`. Layers with
parameters also leave their gradients in `dW` and `db` (`dgamma`, `dbeta`).

Dropout and batch normalization (chapter 6.3-6.4) behave differently in
training and at test time: their `forward(x, train_flg=True)` takes the
book's flag (`uses_train_flg`), the other layers' `forward(x)` does not.

A layer kind is one class, in a module of its own here, and declares everything every path needs
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
  network bounds; `workspace_bytes`, the workspace's size counted for the
  memory estimate;
- the fast numerical gradient's forms (`sgdlab.engine.conv_perturbation`,
  which knows no kind by name): `reference_state` (what it keeps of the
  book's forward pass: dropout's mask, pooling's winners, relu's reach to
  its kink), `carry` (the layer applied to many nudged copies of a batch at
  once, one image channel of them while the layers are `channelwise`,
  finding the nudges that cross its `kink`), `nudged` (how a nudge of its
  parameters moves its output) and `follow_batch` (running statistics moved
  by a batch); `kink` says in words where its slope jumps, for gradcheck.

The activation layers are built from the definitions in
`sgdlab.nn.activations`: `Sigmoid()` and `Relu()` are the book's names,
`activation_layer("tanh")` makes the layer of any activation by name.
"""

from .activation import BOOK_ACTIVATION_LAYERS, ActivationLayer, Relu, Sigmoid, activation_layer
from .affine import Affine
from .base import LAYER_KINDS, MAX_FEATURES, MAX_WINDOW, Layer, spec_fields
from .batch_norm import BATCH_NORM_EPS, BatchNormalization, batch_normalize
from .convolution import Convolution
from .dropout import Dropout
from .kinds import frozen_training, layer_kind
from .pooling import Pooling
from .softmax_with_loss import SoftmaxWithLoss

__all__ = ["BOOK_ACTIVATION_LAYERS", "ActivationLayer", "Relu", "Sigmoid", "activation_layer", "Affine", "LAYER_KINDS",
           "MAX_FEATURES", "MAX_WINDOW", "Layer", "spec_fields", "BATCH_NORM_EPS", "BatchNormalization",
           "batch_normalize", "Convolution", "Dropout", "frozen_training", "layer_kind", "Pooling", "SoftmaxWithLoss"]
