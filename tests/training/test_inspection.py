"""What the lab page and report.html show of a network: a convolutional net's first filters and, for one
digit, its feature maps, checked against the definitions computed here directly."""

import base64
import io

import numpy as np
from PIL import Image

from sgdlab.nn.network import ConvNet, MultiLayerNet, SimpleConvNet, TwoLayerNet
from sgdlab.training import inspection
from sgdlab.training.inspection import (FILTER_COLUMNS, HISTOGRAM_BINS, STRIP_SIZE, TILE_GAP, activation_histograms,
                                       convolutions, first_layer_filters, hidden_unit_weights, predict_in_batches,
                                       read_digit, receptive_field, strip_indices, strongest_inputs, guesses_strip)

SMALL_CONVNET = [{"type": "convolution", "filter_num": 11, "filter_size": 3, "pad": 1}, {"type": "relu"},
                 {"type": "pooling", "pool_size": 2}, {"type": "affine", "output_size": 7}, {"type": "relu"}]


def decoded(data_url):
    """The RGB pixels of a PNG data URL, (H, W, 3) uint8, and checks that it is one."""
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):]))) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def tiles(pixels, count, height, width, columns=FILTER_COLUMNS):
    """The `count` tiles of a grid `image_grid` drew, (count, height, width, 3), its gaps checked to be the
    right size."""
    rows, step_down, step_across = -(-count // columns), height + TILE_GAP, width + TILE_GAP
    assert pixels.shape == (rows * step_down - TILE_GAP, min(columns, count) * step_across - TILE_GAP, 3)
    return np.stack([pixels[(k // columns) * step_down:][:height, (k % columns) * step_across:][:, :width]
                     for k in range(count)])


def digit(seed=0):
    """A 784-pixel image in 0..1 with a bright stroke in it."""
    pixels = np.random.default_rng(seed).random((28, 28)) * 0.2
    pixels[5:23, 12:16] = 1.0
    return pixels.ravel()


def convolved(image, W, b, pad):
    """The convolution of one (C, H, W) image by its definition: each filter's sum over each window, stride 1."""
    FN, C, FH, FW = W.shape
    padded = np.pad(image, [(0, 0), (pad, pad), (pad, pad)])
    out_h, out_w = padded.shape[1] - FH + 1, padded.shape[2] - FW + 1
    out = np.empty((FN, out_h, out_w))
    for f in range(FN):
        for y in range(out_h):
            for x in range(out_w):
                out[f, y, x] = np.sum(padded[:, y:y + FH, x:x + FW] * W[f]) + b[f]
    return out


def max_pooled(maps, size=2):
    FN, H, W = maps.shape
    return maps.reshape(FN, H // size, size, W // size, size).max(axis=(2, 4))


def test_the_filters_are_drawn_as_the_book_draws_them_one_grey_image_each():
    network = ConvNet(layers=SMALL_CONVNET, rng=3)
    filters = network.params["W1"][:, 0]
    drawn = tiles(decoded(first_layer_filters(network)), 11, 3, 3)
    assert (drawn[..., 0] == drawn[..., 1]).all() and (drawn[..., 1] == drawn[..., 2]).all()  # grey
    grey = drawn[..., 0].reshape(11, -1)
    weights = filters.reshape(11, -1)
    # each filter scaled to its own range, as imshow with gray_r does: its largest weight black, its smallest white
    assert (grey[np.arange(11), weights.argmax(axis=1)] == 0).all()
    assert (grey[np.arange(11), weights.argmin(axis=1)] == 255).all()
    expected = 255 * (weights.max(axis=1, keepdims=True) - weights) / np.ptp(weights, axis=1, keepdims=True)
    assert np.abs(grey - expected).max() <= 0.5 + 1e-9
    assert hidden_unit_weights(network) is None  # a dense net's tiles are for a dense net


def test_simple_convnets_thirty_filters_make_a_compact_grid_and_a_dense_net_has_none():
    assert decoded(first_layer_filters(SimpleConvNet(rng=0))).shape == (4 * 6 - 1, 8 * 6 - 1, 3)
    dense = TwoLayerNet(rng=0)
    assert first_layer_filters(dense) is None
    assert decoded(hidden_unit_weights(dense)).shape == (5 * 29 - 1, 10 * 29 - 1, 3)


def test_a_digit_read_shows_each_filters_feature_maps_after_relu_and_after_pooling():
    network = ConvNet(layers=SMALL_CONVNET, rng=1, dtype=np.float64)
    network.params["b1"][:] = np.linspace(-0.05, 0.05, 11)  # some maps shifted below zero, some above
    read = read_digit(network, digit())
    activated = np.maximum(convolved(digit().reshape(1, 28, 28), network.params["W1"], network.params["b1"], 1), 0)
    pooled = max_pooled(activated)
    assert [stage["layers"] for stage in read["feature_maps"]] == [["convolution", "relu"], ["pooling"]]
    scale = activated.max()  # one scale for every map: black 0, white the largest output
    for stage, maps in zip(read["feature_maps"], (activated, pooled)):
        drawn = tiles(decoded(stage["image"]), 11, *maps.shape[1:])
        assert (stage["height"], stage["width"]) == decoded(stage["image"]).shape[:2]  # the page sizes it by them
        assert np.abs(drawn[..., 0] - 255 * maps / scale).max() <= 0.5 + 1e-6
        assert (drawn[..., 0] == drawn[..., 2]).all()
    hidden = np.maximum(pooled.reshape(-1) @ network.params["W2"] + network.params["b2"], 0)
    (only,) = read["hidden_layers"]
    np.testing.assert_allclose(only["values"], hidden, rtol=1e-12, atol=1e-12)
    scores = hidden @ network.params["W3"] + network.params["b3"]
    probabilities = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    np.testing.assert_allclose(read["probabilities"], probabilities, rtol=1e-10)
    assert read["prediction"] == probabilities.argmax()


def test_signed_feature_maps_are_red_and_blue_and_a_net_without_pooling_or_hidden_layer_has_one_stage():
    network = ConvNet(layers=[{"type": "convolution", "filter_num": 3, "filter_size": 5}, {"type": "tanh"}], rng=2)
    read = read_digit(network, digit())
    assert read["hidden_layers"] == [] and len(read["probabilities"]) == 10
    (stage,) = read["feature_maps"]
    assert stage["layers"] == ["convolution", "tanh"]
    maps = np.tanh(convolved(digit().reshape(1, 28, 28), network.params["W1"], network.params["b1"], 0))
    drawn = tiles(decoded(stage["image"]), 3, 24, 24).astype(int)
    positive, negative = maps == maps.max(), maps == maps.min()
    assert (drawn[positive][:, 0] > drawn[positive][:, 2]).all()  # the largest output red
    assert (drawn[negative][:, 2] > drawn[negative][:, 0]).all()  # the most negative blue


def test_a_dense_net_reads_a_digit_as_before_its_hidden_units_and_no_feature_maps():
    network = TwoLayerNet(784, 12, 10, rng=0)
    read = read_digit(network, digit())
    assert read["feature_maps"] is None
    expected = 1 / (1 + np.exp(-(digit() @ network.params["W1"] + network.params["b1"])))
    assert [(layer["layer"], layer["activation"]) for layer in read["hidden_layers"]] == [(1, "sigmoid")]
    np.testing.assert_allclose(read["hidden_layers"][0]["values"], expected, rtol=1e-12)


TWO_CONVOLUTIONS = [{"type": "convolution", "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "relu"},
                    {"type": "convolution", "filter_num": 5, "filter_size": 3, "pad": 1}, {"type": "relu"},
                    {"type": "pooling", "pool_size": 2}, {"type": "affine", "output_size": 6}, {"type": "relu"}]


POOLED_CONVOLUTIONS = [{"type": "convolution", "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "relu"},
                       {"type": "pooling", "pool_size": 2},
                       {"type": "convolution", "filter_num": 5, "filter_size": 3, "pad": 1}, {"type": "relu"},
                       {"type": "affine", "output_size": 6}]


def test_every_convolution_is_found_and_each_deeper_filter_shown_as_the_patch_that_drives_it_most(monkeypatch):
    monkeypatch.setattr(inspection, "PATTERN_CHUNK", 2)  # three images in two chunks: the second's found at its own
    network = ConvNet(layers=POOLED_CONVOLUTIONS, rng=3, dtype=np.float64)
    assert convolutions(network) == [0, 3]
    images = np.stack([digit(seed).reshape(28, 28) for seed in range(3)])
    images[1, 3:9, 20:26] = 1.0  # other strokes in each image, so that filters differ in where they fire most
    images[2, 18:21, 2:24] = 1.0
    (found,) = strongest_inputs(network, (images * 255).round().astype(np.uint8).reshape(3, 784))
    assert (found["convolution"], found["filters"], found["channels"], found["size"]) == (2, 5, 4, [3, 3])
    assert found["field"] == [8, 8] and found["images"] == 3  # 3 after a 2x2 pooling after 3: 2 * 3 + 2 - 1 + 1
    pixels = (images * 255).round() / 255
    outputs = np.stack([convolved(max_pooled(np.maximum(convolved(image.reshape(1, 28, 28), network.params["W1"],
                                                                  network.params["b1"], 1), 0)),
                                  network.params["W2"], network.params["b2"], 1) for image in pixels])
    drawn = tiles(decoded(found["image"]), 5, 8, 8)
    padded = np.pad(pixels.reshape(3, 28, 28), [(0, 0), (3, 4), (3, 4)])  # beyond the edge: black
    for f in range(5):
        n, row, column = np.unravel_index(outputs[:, f].argmax(), outputs[:, f].shape)
        # output (row, column) sees pooled rows row-1..row+1, so pixel rows 2 row - 3 .. 2 row + 4 of the image
        expected = padded[n, 2 * row:2 * row + 8, 2 * column:2 * column + 8]
        assert np.abs(drawn[f, ..., 0] - 255 * expected).max() <= 0.5 + 1e-6
    assert [entry["convolution"] for entry in strongest_inputs(network, images, start=0)] == [1, 2]
    assert strongest_inputs(SimpleConvNet(rng=0), images) == []  # one convolution: its weights are its figure


def test_the_receptive_fields_of_the_books_deep_convnet():
    from sgdlab import DeepConvNet

    network = DeepConvNet(rng=0)
    positions = convolutions(network)
    sizes = [receptive_field(network.layers[:k + 1], 0, 0) for k in positions]
    # 3x3 windows widen a field by 2 times the spacing of their input's pixels, a 2x2 pooling by 1 times it and
    # doubles that spacing: 3, 5 | 6 | 10, 14 | 16 | 24, 32; a field starts earlier by each padding times its
    # spacing: -1, -2 | -2 | -4, -4 - 2 * 2 | -8 | -12, -16
    assert [bottom - top + 1 for (top, bottom), _ in sizes] == [3, 5, 10, 14, 24, 32]
    assert [top for (top, _), _ in sizes] == [-1, -2, -4, -8, -12, -16]
    assert all(rows == columns for rows, columns in sizes)


def test_a_digit_read_shows_the_feature_maps_of_every_convolution():
    network = ConvNet(layers=TWO_CONVOLUTIONS, rng=3, dtype=np.float64)
    read = read_digit(network, digit())
    assert [(stage["convolution"], stage["layers"]) for stage in read["feature_maps"]] == [
        (1, ["convolution", "relu"]), (2, ["convolution", "relu"]), (2, ["pooling"])]
    first = np.maximum(convolved(digit().reshape(1, 28, 28), network.params["W1"], network.params["b1"], 1), 0)
    second = np.maximum(convolved(first, network.params["W2"], network.params["b2"], 1), 0)
    for stage, maps in zip(read["feature_maps"], (first, second)):
        drawn = tiles(decoded(stage["image"]), len(maps), *maps.shape[1:])
        assert np.abs(drawn[..., 0] - 255 * maps / maps.max()).max() <= 0.5 + 1e-6


def test_the_page_checks_the_gradient_of_small_nets_whole_and_of_larger_ones_on_a_sample_of_entries():
    from sgdlab import DeepConvNet
    from sgdlab.training.inspection import gradient_agreement, page_gradient_entries

    narrow = {f"conv_param_{k}": {"filter_num": 4 * (1 << ((k - 1) // 2))} for k in range(1, 7)}  # 4, 8, 16 filters
    assert page_gradient_entries(SimpleConvNet(rng=0)) is None and page_gradient_entries(TwoLayerNet()) is None
    assert page_gradient_entries(DeepConvNet(**narrow, rng=0)) is None  # 4,464 later weights: seconds
    assert page_gradient_entries(DeepConvNet(rng=0)) == 10  # the book's 71,424: minutes whole, seconds sampled
    wide = ConvNet(layers=[{"type": "convolution", "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "relu"},
                           {"type": "pooling", "pool_size": 4, "stride": 4},
                           {"type": "convolution", "filter_num": 300, "filter_size": 3, "pad": 1}, {"type": "relu"},
                           {"type": "pooling", "pool_size": 7, "stride": 7}], rng=0, dtype=np.float64)
    assert page_gradient_entries(wide) == 10  # 10,800 weights in its second convolution
    images = np.stack([(digit(seed) * 255).round().astype(np.uint8) for seed in range(2)])
    rows = gradient_agreement(wide, images, np.array([3, 7]))
    assert [(row["name"], row["sampled"], row["size"]) for row in rows] == [
        ("W1", 10, 36), ("b1", None, 4), ("W2", 10, 10800), ("b2", 10, 300), ("W3", 10, 3000), ("b3", None, 10)]
    # (the output affine layer: differentiated whole by the dense fast gradient, in a blink)
    assert all(row["passed"] for row in rows)


def test_a_deeper_dense_net_reads_a_digit_showing_every_hidden_layer():
    network = MultiLayerNet(784, [12, 9, 7], 10, activation="relu", use_batchnorm=True, use_dropout=True, rng=0)
    read = read_digit(network, digit())
    assert [(layer["layer"], layer["activation"], len(layer["values"])) for layer in read["hidden_layers"]] == [
        (1, "relu", 12), (2, "relu", 9), (3, "relu", 7)]  # the output affine layer, no activation after it, is none
    x = digit()[None]
    for k, layer in enumerate(read["hidden_layers"]):  # by the book's layers: affine, batch norm, relu (dropout after)
        x = network.layers[4 * k].forward(x)
        x = network.layers[4 * k + 1].forward(x, False)
        x = np.maximum(x, 0)
        np.testing.assert_allclose(layer["values"], x[0], rtol=1e-12, atol=1e-12)
        x = network.layers[4 * k + 3].forward(x, False)


def test_the_activation_histograms_count_each_activation_layers_outputs_on_a_fixed_batch_as_the_book_does():
    rng = np.random.default_rng(0)
    x_test = rng.integers(0, 256, (1200, 784), dtype=np.uint8)
    network = MultiLayerNet(784, [20, 15], 10, activation="sigmoid", rng=0)
    first, second = activation_histograms(network, x_test)
    a = 1 / (1 + np.exp(-(x_test[:1000] / 255 @ network.params["W1"] + network.params["b1"])))  # the book's 1000
    np.testing.assert_array_equal(first["counts"], np.histogram(a, HISTOGRAM_BINS, (0, 1))[0])  # its 6.2 ranges
    assert (first["after"], first["number"], first["activation"], first["range"]) == ("affine", 1, "sigmoid", [0, 1])
    assert (second["after"], second["number"], second["values"]) == ("affine", 2, 1000 * 15)
    relu_net = SimpleConvNet(conv_param={"filter_num": 3, "filter_size": 5}, hidden_size=8, weight_init_std=1.0,
                             rng=0)
    convolution, affine = activation_histograms(relu_net, x_test)
    assert (convolution["after"], affine["after"], convolution["activation"]) == ("convolution", "affine", "relu")
    assert convolution["values"] == 100 * 3 * 24 * 24 and sum(convolution["counts"]) == convolution["values"]
    assert convolution["range"][0] == 0 and convolution["range"][1] > 1  # widened to relu's outputs above 1


def test_the_strip_of_test_digits_shows_the_same_digits_with_the_networks_current_guesses():
    rng = np.random.default_rng(1)
    x_test, t_test = rng.integers(0, 256, (500, 784), dtype=np.uint8), rng.integers(0, 10, 500)
    network = TwoLayerNet(784, 10, 10, weight_init_std=0.1, rng=0)
    probabilities = predict_in_batches(network, x_test)
    strip = guesses_strip(probabilities, x_test, t_test)
    indices = [item["index"] for item in strip]
    assert len(strip) == STRIP_SIZE and indices == sorted(set(indices)) == strip_indices(500).tolist()
    scores = network.predict(x_test[indices] / 255)
    assert [item["predicted"] for item in strip] == scores.argmax(axis=1).tolist()
    assert [item["label"] for item in strip] == t_test[indices].tolist()
    assert decoded(strip[0]["image"]).shape == (28, 28, 3)
    network.params["W2"] *= -1  # other weights: the same digits, other guesses
    again = guesses_strip(predict_in_batches(network, x_test), x_test, t_test)
    assert [item["index"] for item in again] == indices
    assert [item["predicted"] for item in again] != [item["predicted"] for item in strip]


def test_a_test_digits_picture_is_encoded_once_for_every_inspection_that_shows_it(monkeypatch):
    """The strip and the mistakes show the same test digits at every inspection: their PNGs are made once."""
    from sgdlab.training import inspection

    rng = np.random.default_rng(2)
    x_test, t_test = rng.integers(0, 256, (300, 784), dtype=np.uint8), rng.integers(0, 10, 300)
    network = TwoLayerNet(784, 10, 10, weight_init_std=0.1, rng=0)
    pictures = inspection.DigitPictures(x_test)
    first = guesses_strip(predict_in_batches(network, x_test), x_test, t_test, pictures)
    encoded = []
    monkeypatch.setattr(inspection, "png_data_url", lambda pixels: encoded.append(pixels) or "new")
    network.params["W2"] *= -1
    again = guesses_strip(predict_in_batches(network, x_test), x_test, t_test, pictures)
    mistakes = inspection.test_set_errors(network, x_test, t_test, pictures=pictures)["gallery"]
    assert [item["image"] for item in again] == [item["image"] for item in first] and "new" not in first
    shown_before = {item["index"] for item in first}
    assert len(encoded) == sum(item["index"] not in shown_before for item in mistakes) > 0  # only the new digits
    assert {item["image"] for item in mistakes if item["index"] in shown_before} <= {item["image"] for item in first}
