"""Tests for load_digit_image and digit_from_image: any picture of a digit becomes an MNIST-style 784-vector.

Every image is drawn here with Pillow: a "7" (a stroke with a corner, so its
centre of mass is not the centre of its box) or a blank page, and in the
second half "photographed" (grey paper, uneven light, noise, specks, a
sticky note on a desk) to test the steps that find the digit in a photo.
tests/data/test_photographed_digits.py measures how well the book's network
then reads photographed digits.
"""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sgdlab.errors import SgdlabError
from sgdlab.data.digit_images import (FAINTEST_INK, MNIST_SIDE, _ink_levels, _otsu_threshold, _paper,
                                      digit_from_image, load_digit_image)

CENTRE = (MNIST_SIDE - 1) / 2  # 13.5: the middle of a 28-pixel row, counted from 0


def seven(size=200, ink=0, paper=255, mode="L", offset=(0.0, 0.0)):
    """A "7" on a size x size page; `offset` moves it, as a fraction of the page."""
    image = Image.new(mode, (size, size), paper)
    dx, dy = offset
    corners = [(0.25 + dx, 0.2 + dy), (0.75 + dx, 0.2 + dy), (0.45 + dx, 0.85 + dy)]
    ImageDraw.Draw(image).line([(x * size, y * size) for x, y in corners], fill=ink,
                               width=max(1, size // 10), joint="curve")
    return image


def save(image, folder, name, **options):
    path = folder / name
    image.save(path, **options)
    return path


def frame(path):
    """The 28x28 picture load_digit_image makes of `path`."""
    return load_digit_image(path).reshape(MNIST_SIDE, MNIST_SIDE)


def centre_of_mass(picture):
    rows, cols = np.indices(picture.shape)
    return (rows * picture).sum() / picture.sum(), (cols * picture).sum() / picture.sum()


def ink_box(picture, level=0.1):
    """(height, width) of the smallest box holding every pixel above `level`."""
    rows, cols = np.flatnonzero((picture > level).any(axis=1)), np.flatnonzero((picture > level).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.fixture
def dark_on_paper(tmp_path):
    """The reference: a black "7" on white paper, and its 28x28 picture."""
    path = save(seven(), tmp_path, "seven.png")
    return path, frame(path)


def test_returns_784_float32_pixels_in_0_to_1(dark_on_paper):
    path, _ = dark_on_paper
    pixels = load_digit_image(path)
    assert pixels.shape == (MNIST_SIDE * MNIST_SIDE,)
    assert pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert pixels.max() > 0.9  # a black stroke on white becomes a full-intensity stroke


def test_dark_digit_on_light_paper_is_inverted(dark_on_paper):
    _, picture = dark_on_paper
    assert picture.max() > 0.9
    for edge in (picture[0], picture[-1], picture[:, 0], picture[:, -1]):
        assert edge.max() == 0.0  # MNIST's black background, not the white paper
    assert np.count_nonzero(picture > 0.5) > 20  # the stroke is bright
    assert np.count_nonzero(picture < 0.01) > MNIST_SIDE * MNIST_SIDE / 2  # and most of the frame is black


def test_light_digit_on_dark_background_is_not_inverted(dark_on_paper, tmp_path):
    _, reference = dark_on_paper
    picture = frame(save(seven(ink=255, paper=0), tmp_path, "light.png"))
    assert picture[0].max() == 0.0 and picture.max() > 0.9
    np.testing.assert_allclose(picture, reference, atol=1e-5)  # the same digit either way


@pytest.mark.parametrize("transparent", [(0, 0, 0, 0), (255, 255, 255, 0)], ids=["black", "white"])
def test_transparent_background_counts_as_white_paper(dark_on_paper, tmp_path, transparent):
    # Transparent pixels often store black colour values; they are shown, and read, as the page.
    _, reference = dark_on_paper
    image = seven(ink=(0, 0, 0, 255), paper=transparent, mode="RGBA")
    picture = frame(save(image, tmp_path, "seven.png"))
    np.testing.assert_allclose(picture, reference, atol=1e-5)


def test_palette_image_with_a_transparent_colour(dark_on_paper, tmp_path):
    _, reference = dark_on_paper
    image = Image.new("P", (200, 200), 0)
    image.putpalette([0, 0, 0, 0, 0, 0] + [0] * (256 * 3 - 6))  # both entries black, entry 0 transparent
    ImageDraw.Draw(image).line([(50, 40), (150, 40), (90, 170)], fill=1, width=20, joint="curve")
    picture = frame(save(image, tmp_path, "seven.png", transparency=0))
    np.testing.assert_allclose(picture, reference, atol=1e-5)


@pytest.mark.parametrize("offset", [(0.0, 0.0), (-0.2, -0.15), (0.2, 0.1)], ids=["middle", "top-left", "bottom-right"])
def test_digit_is_scaled_into_20x20_and_centred_by_its_mass(tmp_path, offset):
    picture = frame(save(seven(offset=offset), tmp_path, "seven.png"))
    row, col = centre_of_mass(picture)
    assert abs(row - CENTRE) < 1.0 and abs(col - CENTRE) < 1.0
    assert max(ink_box(picture)) in (20, 21)  # the longer side fills the 20-pixel box (plus resampling blur)
    assert ink_box(picture)[0] <= 22 and ink_box(picture)[1] <= 22


@pytest.mark.parametrize("size", [8, 14, 28])
def test_tiny_images(tmp_path, size):
    picture = frame(save(seven(size), tmp_path, "tiny.png"))
    assert picture.max() > 0.9 and picture[0].max() == 0.0
    row, col = centre_of_mass(picture)
    assert abs(row - CENTRE) < 1.5 and abs(col - CENTRE) < 1.5


def test_huge_image_gives_the_same_picture_as_a_small_one(dark_on_paper, tmp_path):
    _, reference = dark_on_paper
    picture = frame(save(seven(3000), tmp_path, "huge.png"))
    assert np.abs(picture - reference).mean() < 0.01
    assert np.abs(picture - reference).max() < 0.2  # only the anti-aliasing of the stroke's edges differs


def test_jpeg_gives_nearly_the_png_picture(dark_on_paper, tmp_path):
    _, reference = dark_on_paper
    picture = frame(save(seven(), tmp_path, "seven.jpg", quality=90))
    assert np.abs(picture - reference).mean() < 0.02


def test_grey_paper_becomes_black_background(dark_on_paper, tmp_path):
    # A photographed page is never pure white: its level is subtracted, so the crop finds the digit
    # and no grey box is left around it.
    _, reference = dark_on_paper
    picture = frame(save(seven(ink=40, paper=200), tmp_path, "photo.png"))
    assert picture[0].max() == 0.0 and picture[:, 0].max() == 0.0
    np.testing.assert_allclose(picture / picture.max(), reference / reference.max(), atol=0.1)


def test_sixteen_bit_grayscale_keeps_its_grey_levels(tmp_path):
    page16 = np.full((200, 200), 65535, dtype=np.uint16)
    page16[40:160, 95:105] = 20000  # a pencil-grey stroke
    page16[40:50, 60:140] = 40000  # and a lighter one
    page8 = np.round(page16 / 257).astype(np.uint8)
    path16 = save(Image.fromarray(page16), tmp_path, "deep.png")
    assert Image.open(path16).mode.startswith("I;16")
    picture = frame(path16)
    assert picture.max() > 0.5  # not clipped to white and lost
    np.testing.assert_allclose(picture, frame(save(Image.fromarray(page8), tmp_path, "flat.png")), atol=0.01)


@pytest.mark.parametrize("mode", ["I", "F"])
def test_32_bit_and_floating_point_images_are_scaled_not_clipped(dark_on_paper, tmp_path, mode):
    _, reference = dark_on_paper
    levels = np.asarray(seven(ink=60), dtype=np.float64)
    deep = (levels * 257).astype(np.int32) if mode == "I" else (levels / 255).astype(np.float32)  # 16 bits; 0..1
    path = save(Image.fromarray(deep), tmp_path, "deep.tif")
    assert Image.open(path).mode == mode
    np.testing.assert_allclose(frame(path), reference, atol=1e-5)


def test_faint_strokes_are_brought_to_full_intensity(dark_on_paper, tmp_path):
    # MNIST's strongest ink is always (nearly) 255: a light pencil digit must look the same to the network.
    _, reference = dark_on_paper
    picture = frame(save(seven(ink=190), tmp_path, "pencil.png"))
    assert reference.max() > 0.99
    np.testing.assert_allclose(picture, reference, atol=1e-6)


def test_noise_on_a_blank_page_is_not_brightened_into_a_digit(tmp_path):
    rng = np.random.default_rng(0)
    page = np.clip(235 + rng.integers(-20, 21, (100, 100)), 0, 255).astype(np.uint8)  # up to 0.08 above the paper
    assert load_digit_image(save(Image.fromarray(page), tmp_path, "blank.png")).max() < FAINTEST_INK


@pytest.mark.parametrize("paper, ink", [(120, 20), (200, 0), (30, 230)])
def test_32_bit_image_of_8_bit_values_reads_as_the_8_bit_image(tmp_path, paper, ink):
    levels = np.asarray(seven(ink=ink, paper=paper))
    deep = save(Image.fromarray(levels.astype(np.int32)), tmp_path, "deep.tif")
    np.testing.assert_allclose(frame(deep), frame(save(Image.fromarray(levels), tmp_path, "flat.png")), atol=1e-6)


@pytest.mark.parametrize("bits", [10, 12, 16])
def test_32_bit_image_of_fewer_bits_reads_as_its_full_range(dark_on_paper, tmp_path, bits):
    _, reference = dark_on_paper
    levels = np.asarray(seven(ink=60), dtype=np.float64)
    deep = np.round(levels / 255 * (2 ** bits - 1)).astype(np.int32)  # a 10-, 12- or 16-bit scan
    np.testing.assert_allclose(frame(save(Image.fromarray(deep), tmp_path, "scan.tif")), reference, atol=1e-5)


def test_transparent_value_of_a_16_bit_image_counts_as_white_paper(dark_on_paper, tmp_path):
    _, reference = dark_on_paper
    page = np.where(np.asarray(seven(ink=0, paper=255)) == 0, 0, 1000).astype(np.uint16)  # black ink, dim page
    path = save(Image.fromarray(page), tmp_path, "clear16.png", transparency=1000)
    assert Image.open(path).mode.startswith("I;16")
    np.testing.assert_allclose(frame(path), reference, atol=1e-6)


@pytest.mark.parametrize("mode, hot", [("F", 1.0001), ("I", 256)])
def test_one_hot_pixel_does_not_change_a_deep_images_range(dark_on_paper, tmp_path, mode, hot):
    _, reference = dark_on_paper
    levels = np.asarray(seven(ink=60), dtype=np.float64)
    deep = (levels / 255).astype(np.float32) if mode == "F" else levels.astype(np.int32)
    deep[0, 0] = hot
    np.testing.assert_allclose(frame(save(Image.fromarray(deep), tmp_path, "hot.tif")), reference, atol=1e-5)


@pytest.mark.parametrize("missing", [np.nan, np.inf])
def test_missing_or_infinite_pixels_on_the_paper_are_not_ink(dark_on_paper, tmp_path, missing):
    _, reference = dark_on_paper
    deep = (np.asarray(seven(ink=60), dtype=np.float64) / 255).astype(np.float32)
    deep[170:180, 170:180] = missing  # on the paper, away from the stroke
    picture = frame(save(Image.fromarray(deep), tmp_path, "gaps.tif"))
    assert np.all(np.isfinite(picture))
    np.testing.assert_allclose(picture, reference, atol=1e-5)


def test_transparent_colour_of_an_rgb_image_counts_as_white_paper(tmp_path):
    navy_on_clear = seven(ink=(0, 0, 128, 255), paper=(0, 0, 0, 0), mode="RGBA")
    navy_on_black = seven(ink=(0, 0, 128), paper=(0, 0, 0), mode="RGB")
    expected = frame(save(navy_on_clear, tmp_path, "rgba.png"))
    assert expected.max() > 0.99
    np.testing.assert_allclose(frame(save(navy_on_black, tmp_path, "trns.png", transparency=(0, 0, 0))), expected,
                               atol=1e-6)


def test_photo_is_turned_upright_as_its_exif_orientation_says(dark_on_paper, tmp_path):
    _, reference = dark_on_paper
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; show the image rotated 90 degrees clockwise
    sideways = seven().transpose(Image.Transpose.ROTATE_90)
    picture = frame(save(sideways, tmp_path, "photo.png", exif=exif))
    np.testing.assert_allclose(picture, reference, atol=1e-6)
    assert not np.allclose(frame(save(sideways, tmp_path, "plain.png")), reference, atol=0.1)


@pytest.mark.parametrize("mode, colour", [("L", 255), ("L", 0), ("L", 128), ("RGB", (200, 180, 160)),
                                          ("RGBA", (0, 0, 0, 0))],
                         ids=["white", "black", "grey", "beige", "transparent"])
def test_blank_page_gives_an_empty_frame(tmp_path, mode, colour):
    pixels = load_digit_image(save(Image.new(mode, (40, 30), colour), tmp_path, "blank.png"))
    assert pixels.shape == (MNIST_SIDE * MNIST_SIDE,)
    assert np.all(pixels == 0.0)


def test_one_pixel_image(tmp_path):
    assert np.all(load_digit_image(save(Image.new("L", (1, 1), 255), tmp_path, "dot.png")) == 0.0)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.png"
    with pytest.raises(SgdlabError, match=f"{path}: no such image file"):
        load_digit_image(path)


def test_file_that_is_not_an_image_is_named(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("a shopping list, not a picture\n")
    with pytest.raises(SgdlabError, match=f"{path}: cannot read it as an image"):
        load_digit_image(path)


def test_truncated_image_is_named(dark_on_paper, tmp_path):
    path, _ = dark_on_paper
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SgdlabError, match=f"{cut}: cannot read it as an image"):
        load_digit_image(cut)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(SgdlabError, match="cannot read it as an image"):
        load_digit_image(tmp_path)


def test_image_whose_header_claims_billions_of_pixels_is_refused_clearly(tmp_path):
    # A damaged GIF header (logical screen 65535 x 65535): Pillow refuses it as a decompression bomb.
    buffer = io.BytesIO()
    seven(50).convert("P").save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = b"\xff\xff\xff\xff"
    path = tmp_path / "damaged.gif"
    path.write_bytes(bytes(data))
    with pytest.raises(SgdlabError, match=f"{path}: too large to read as an image"):
        load_digit_image(path)


# --- photographs: the steps that find the digit on real paper -----------------------------------------------------

def photo(page=(600, 800), digit=120, at=(0.3, 0.7), paper=0.75, ink=0.15, light=(1.0, 1.0), noise=0.02, seed=0):
    """A "7" `digit` pixels tall, its top left at `at` (fractions of the page's height and width), written on
    grey paper lit from light[0] (left) to light[1] (right), with Gaussian noise: a uint8 array."""
    rng = np.random.default_rng(seed)
    height, width = page
    coverage = 1.0 - np.asarray(seven(digit), dtype=np.float64) / 255
    levels = np.full(page, paper)
    top, left = int(at[0] * height), int(at[1] * width)
    region = levels[top:top + digit, left:left + digit]
    region[...] = region * (1 - coverage) + ink * coverage
    levels *= np.linspace(*light, width)
    levels += rng.normal(0.0, noise, page)
    return np.round(np.clip(levels, 0, 1) * 255).astype(np.uint8)


def difference(picture, reference):
    """The mean absolute difference of two 28x28 pictures: below 0.1 is the same digit, softer, bolder or tilted."""
    return float(np.abs(picture - reference).mean())


def test_a_photographed_digit_reads_like_the_drawn_one(dark_on_paper):
    _, reference = dark_on_paper
    picture = digit_from_image(photo()).reshape(MNIST_SIDE, MNIST_SIDE)
    assert difference(picture, reference) < 0.06  # 0.04: the camera's noise and blur soften its edges
    row, col = centre_of_mass(picture)
    assert abs(row - CENTRE) < 1.0 and abs(col - CENTRE) < 1.0


def test_background_removal_flattens_an_illumination_gradient():
    page = photo(light=(0.4, 1.0), noise=0.0).astype(np.float32) / 255
    paper = _paper(page, plain=False)
    ink = _ink_levels(page, paper)
    stroke = np.asarray(seven(120)) == 0  # the 7 at rows 180.., columns 560..
    assert ink[:150].max() < 0.01 and ink[:, :500].max() < 0.01  # the paper, dark and light, is all black
    written = ink[180:300, 560:680][stroke]
    np.testing.assert_allclose(written, 1 - 0.15 / 0.75, atol=0.02)  # the ink as dark against its paper everywhere


@pytest.mark.parametrize("light", [(0.4, 1.0), (1.0, 0.5)], ids=["dim left", "dim right"])
def test_uneven_light_on_blank_paper_is_no_digit(light):
    assert not digit_from_image(photo(digit=0, light=light)).any()


def test_specks_far_from_the_digit_are_dropped(dark_on_paper):
    _, reference = dark_on_paper
    page = photo()
    rng = np.random.default_rng(1)
    for row, col in zip(rng.integers(20, 580, 40), rng.integers(20, 500, 40)):  # dust and pen dots on the left
        page[row:row + 4, col:col + 4] = 40
    picture = digit_from_image(page).reshape(MNIST_SIDE, MNIST_SIDE)
    np.testing.assert_allclose(picture, digit_from_image(photo()).reshape(MNIST_SIDE, MNIST_SIDE), atol=1e-6)


def test_the_crop_finds_a_small_digit_off_centre(dark_on_paper):
    _, reference = dark_on_paper
    page = photo(page=(900, 1200), digit=70, at=(0.8, 0.1), light=(0.7, 1.0))  # 8 % of the height, bottom left
    picture = digit_from_image(page).reshape(MNIST_SIDE, MNIST_SIDE)
    assert max(ink_box(picture)) in (20, 21)  # the digit, not the page, fills the 20x20 box
    row, col = centre_of_mass(picture)
    assert abs(row - CENTRE) < 1.0 and abs(col - CENTRE) < 1.0
    assert difference(picture, reference) < 0.09  # 0.06: a 7-pixel pen, blurred, makes a bolder stroke


def sticky_note(digit=True, seed=0):
    """A light square note, tilted, on a dark desk with a grain; a "7" on it unless `digit` is False."""
    rng = np.random.default_rng(seed)
    desk = 0.3 + 0.05 * np.sin(np.arange(640) / 7.0)[np.newaxis] + rng.normal(0.0, 0.03, (480, 640))
    note = Image.fromarray(np.full((260, 260), 0.85, dtype=np.float32))
    if digit:
        note.paste(Image.fromarray((np.asarray(seven(160), dtype=np.float32) / 255 * 0.7 + 0.15)), (50, 50))
    shape = Image.new("F", (260, 260), 1.0).rotate(8, expand=True)
    note = np.asarray(note.rotate(8, expand=True, fillcolor=0.0))
    on_note = np.asarray(shape)
    region = desk[100:100 + on_note.shape[0], 150:150 + on_note.shape[1]]
    region[...] = region * (1 - on_note) + note
    return np.round(np.clip(desk, 0, 1) * 255).astype(np.uint8)


def test_a_blank_sticky_note_on_a_desk_holds_no_digit():
    assert not digit_from_image(sticky_note(digit=False)).any()  # its edges and the desk's grain are not ink


def test_the_digit_on_a_sticky_note_is_read_without_the_notes_edges(dark_on_paper):
    _, reference = dark_on_paper
    picture = digit_from_image(sticky_note()).reshape(MNIST_SIDE, MNIST_SIDE)
    assert difference(picture, reference) < 0.1  # 0.067: the note, and the 7 on it, are tilted by 8 degrees
    assert max(ink_box(picture)) in (20, 21) and min(ink_box(picture)) > 14  # the 7 fills the box, not the note
    row, col = centre_of_mass(picture)
    assert abs(row - CENTRE) < 1.0 and abs(col - CENTRE) < 1.0


def test_pixels_touching_only_at_their_corners_are_one_stroke():
    page = np.full((60, 60), 255, dtype=np.uint8)
    page[np.arange(10, 50), np.arange(10, 50)] = 0  # a one-pixel pen line, each pixel diagonal to the next
    picture = digit_from_image(page).reshape(MNIST_SIDE, MNIST_SIDE)
    assert ink_box(picture) == (20, 20)  # the whole line, not one of its pixels scaled up into a square
    assert np.count_nonzero(picture > 0.2) < 40  # a thin diagonal of 20 pixels, not 400
    assert picture[4:10, 18:24].max() == 0.0 and picture[18:24, 4:10].max() == 0.0  # the box's other corners


def test_otsu_threshold_falls_between_faint_smudges_and_strong_ink():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.1, 0.03, 5000), rng.normal(0.7, 0.05, 500)])
    assert 0.25 < _otsu_threshold(values) < 0.55


def test_a_2048_pixel_photo_gives_its_digit_filling_the_box(tmp_path):
    path = save(Image.fromarray(photo(page=(2048, 2048), digit=300, light=(0.6, 1.0))), tmp_path, "big.jpg",
                quality=85)
    picture = frame(path)
    assert max(ink_box(picture)) >= 18 and picture.max() > 0.9  # found and scaled up, not left a speck


# --- digit_from_image: a canvas drawing given as an image or an array ---------------------------------------------

def test_an_image_reads_as_its_file_does(dark_on_paper):
    path, reference = dark_on_paper
    np.testing.assert_array_equal(digit_from_image(seven()), load_digit_image(path))
    np.testing.assert_array_equal(digit_from_image(Image.open(path)), load_digit_image(path))


@pytest.mark.parametrize("make", [
    lambda levels: levels,
    lambda levels: levels.astype(np.float32) / 255,
    lambda levels: levels.astype(np.float64) / 255,
    lambda levels: levels > 127,
    lambda levels: levels.astype(np.uint16) * 257,
    lambda levels: levels.astype(np.int64),
    lambda levels: np.repeat(levels[..., np.newaxis], 3, axis=2),
    lambda levels: np.dstack([np.zeros_like(levels)] * 3 + [255 - levels]),  # black ink on a transparent canvas
    lambda levels: np.dstack([np.zeros_like(levels)] * 3 + [255 - levels]).astype(np.float32) / 255,
    lambda levels: 255 - levels,  # a light stroke on a black canvas, as MNIST draws it
], ids=["uint8", "float32", "float64", "bool", "uint16", "int64", "rgb", "rgba canvas", "rgba floats", "light on dark"])
def test_an_array_reads_as_the_same_picture_saved_as_a_file(dark_on_paper, make):
    _, reference = dark_on_paper
    picture = digit_from_image(make(np.asarray(seven()))).reshape(MNIST_SIDE, MNIST_SIDE)
    np.testing.assert_allclose(picture, reference, atol=1e-5)


@pytest.mark.parametrize("shape, dtype", [((28,), np.uint8), ((28, 28, 2), np.uint8), ((0, 28), np.uint8),
                                          ((28, 28), np.complex64), ((28, 28, 3), np.int32)])
def test_an_array_that_is_no_image_is_named(shape, dtype):
    with pytest.raises(SgdlabError, match="cannot read an array"):
        digit_from_image(np.zeros(shape, dtype=dtype))


def test_an_image_too_large_to_decode_whole_is_refused_before_it_is_decoded(tmp_path):
    import tracemalloc

    path = tmp_path / "huge.png"
    Image.new("L", (10_000, 6_000)).save(path, optimize=True)  # 60 megapixels in a few hundred kB
    tracemalloc.start()
    with pytest.raises(SgdlabError, match="too large to read as an image .*10000x6000 pixels"):
        load_digit_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20_000_000  # far below the 60 MB of its pixels alone
