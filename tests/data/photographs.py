"""Digits as a phone photographs them: a test set generated here, deterministically, with Pillow and NumPy.

A *glyph* is a digit, black on white, with some margin: drawn as pen strokes
(`drawn_glyph`, a handwriting-like skeleton) or rendered in a font that
matplotlib ships (`font_glyph`), with a thin, regular or thick pen (`PENS`).
`clean_page` is that glyph on a white page, the easy case.

Photographing it (`photograph`, one of `SCENES`) degrades it step by step,
each step a function below, as a phone camera would:

- the page is grey, not white, and the ink a dark grey, not black;
- the digit is tilted by a few degrees and placed small and off centre on a
  much larger page;
- the light falls off across the page (an illumination gradient), and in the
  "shadow" scene a soft shadow (of the phone, a hand) covers one side;
- in the "sticky note" scene the page is a small light square of paper,
  itself tilted, lying on a darker wooden desk with a grain;
- the lens blurs it a little, the sensor adds Gaussian noise, and the photo
  is saved as a JPEG of moderate quality.

Every random choice comes from the `numpy.random.Generator` passed in, so a
seed gives the same pictures on every machine with the same Pillow.
"""

import functools
import io
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

GLYPH_SIZE = 96  # the glyph's font size (or drawing height) in pixels, before it is photographed
FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf")  # all in matplotlib
PENS = {"thin": 4, "regular": 9, "thick": 16}  # pen widths in pixels at GLYPH_SIZE
SCENES = ("grey paper", "shadow", "sticky note")
PAGE = (400, 300)  # the photo's (width, height)
MAX_TILT = 6  # degrees
JPEG_QUALITY = (55, 75)


def font_path(name):
    """A TTF file shipped with matplotlib, so present wherever sgdlab is installed."""
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


def _arc(cx, cy, rx, ry, start, end, points=16):
    """Points along an elliptical arc, angles in degrees, clockwise on screen (y points down)."""
    angles = np.radians(np.linspace(start, end, points))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


# Each digit as a handwriting-like skeleton: polylines in a unit box (x right, y down).
SKELETONS = {
    0: [_arc(0.5, 0.5, 0.32, 0.45, 0, 360, 32)],
    1: [[(0.32, 0.22), (0.55, 0.05), (0.55, 0.95)]],
    2: [_arc(0.5, 0.3, 0.3, 0.25, 180, 380) + [(0.18, 0.95), (0.85, 0.95)]],
    3: [_arc(0.48, 0.27, 0.3, 0.22, 200, 450), _arc(0.48, 0.71, 0.34, 0.24, 270, 520)],
    4: [[(0.68, 0.95), (0.68, 0.05), (0.12, 0.68), (0.9, 0.68)]],
    5: [[(0.82, 0.05), (0.3, 0.05), (0.26, 0.45)] + _arc(0.5, 0.67, 0.33, 0.28, 230, 500)],
    6: [_arc(0.62, 0.45, 0.4, 0.45, 285, 180, 10) + _arc(0.5, 0.7, 0.3, 0.25, 180, 540)],
    7: [[(0.15, 0.05), (0.85, 0.05), (0.4, 0.95)]],
    8: [_arc(0.5, 0.27, 0.26, 0.22, 0, 360, 24), _arc(0.5, 0.72, 0.32, 0.24, 0, 360, 24)],
    9: [_arc(0.5, 0.3, 0.3, 0.25, 0, 360, 24), [(0.8, 0.3), (0.72, 0.95)]],
}


def drawn_glyph(digit, pen):
    """A digit drawn with a pen of width PENS[pen]: black strokes on white, as on a canvas."""
    width = PENS[pen]
    margin = width + 4
    height = GLYPH_SIZE
    image = Image.new("L", (int(0.75 * height) + 2 * margin, height + 2 * margin), 255)
    draw = ImageDraw.Draw(image)
    for line in SKELETONS[digit]:
        points = [(margin + x * 0.75 * height, margin + y * height) for x, y in line]
        draw.line(points, fill=0, width=width, joint="curve")
        for x, y in (points[0], points[-1]):  # round pen ends
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    return image


@functools.cache
def _typeface(font):
    """`font` at GLYPH_SIZE, loaded once."""
    return ImageFont.truetype(str(font_path(font)), GLYPH_SIZE)


def font_glyph(digit, font, pen):
    """A digit rendered in `font`, its strokes thinned or thickened to PENS[pen]'s weight."""
    typeface = _typeface(font)
    side = 2 * GLYPH_SIZE
    image = Image.new("L", (side, side), 255)
    thicken = max(0, (PENS[pen] - PENS["regular"]) // 2)
    ImageDraw.Draw(image).text((side / 2, side / 2), str(digit), font=typeface, fill=0, anchor="mm",
                               stroke_width=thicken, stroke_fill=0)
    if pen == "thin":
        image = image.filter(ImageFilter.MaxFilter(5))  # white grows over the black: a finer pen
    left, top, right, bottom = Image.eval(image, lambda v: 255 - v).getbbox()
    margin = 8
    return image.crop((left - margin, top - margin, right + margin, bottom + margin))


def glyphs():
    """Every (digit, style, pen, glyph) of the test set: drawn strokes and each font, every pen."""
    for style in ("drawn",) + FONTS:
        for pen in PENS:
            for digit in range(10):
                glyph = drawn_glyph(digit, pen) if style == "drawn" else font_glyph(digit, style, pen)
                yield digit, style, pen, glyph


def clean_page(glyph):
    """The glyph centred on a white square page: the digit as a scanner would see it."""
    side = int(max(glyph.size) * 1.5)
    page = Image.new("L", (side, side), 255)
    page.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return page


def photograph(glyph, scene, rng):
    """The glyph written on paper and photographed in `scene` (one of SCENES): a decoded JPEG, mode "L"."""
    width, height = PAGE
    ink = _ink_coverage(_tilted(glyph, rng))
    if scene == "sticky note":
        light = _desk_with_note(ink, rng)
    else:
        light = np.full((height, width), rng.uniform(0.6, 0.85))
        ink = _scaled(ink, rng.uniform(0.18, 0.3) * height)
        _write(light, ink, _off_centre(light.shape, ink.shape, rng), rng.uniform(0.08, 0.25))
    light *= _illumination(light.shape, rng)
    if scene == "shadow":
        light *= _shadow(light.shape, rng)
    return _jpeg(_noisy(_blurred(light, rng), rng), rng)


def _tilted(glyph, rng):
    """The glyph turned by a few degrees: nobody holds a phone quite straight."""
    return glyph.rotate(rng.uniform(-MAX_TILT, MAX_TILT), resample=Image.Resampling.BICUBIC, expand=True,
                        fillcolor=255)


def _ink_coverage(glyph):
    """How much of each pixel the ink covers, 0..1 (the glyph's white is 0, its black 1)."""
    return 1.0 - np.asarray(glyph, dtype=np.float64) / 255.0


def _scaled(coverage, digit_height):
    """The ink coverage resized so that the digit is `digit_height` pixels tall."""
    scale = digit_height / coverage.shape[0]
    size = (max(1, round(coverage.shape[1] * scale)), max(1, round(coverage.shape[0] * scale)))
    return np.clip(np.asarray(Image.fromarray(coverage.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)),
                   0.0, 1.0)


def _off_centre(shape, digit_shape, rng):
    """A top-left corner for the digit, anywhere on the page but off its centre and not on its edge."""
    height, width = shape
    margin = 0.1 * min(shape)
    spare_y, spare_x = height - digit_shape[0] - 2 * margin, width - digit_shape[1] - 2 * margin
    side = rng.choice([-1, 1], 2)
    return (int(margin + spare_y * (0.5 + side[0] * rng.uniform(0.15, 0.5))),
            int(margin + spare_x * (0.5 + side[1] * rng.uniform(0.15, 0.5))))


def _write(light, ink, corner, ink_level):
    """Write the digit (its ink coverage) into `light`, the page's reflectance, with its top left at `corner`."""
    top, left = corner
    region = light[top:top + ink.shape[0], left:left + ink.shape[1]]
    region[...] = region * (1 - ink) + ink_level * ink


def _desk_with_note(ink, rng):
    """A dark wooden desk (grain along one direction) with a light, tilted sticky note holding the digit."""
    width, height = PAGE
    grain = rng.normal(0.0, 1.0, (height, width // 8))
    grain = np.asarray(Image.fromarray(grain.astype(np.float32)).resize((width, height), Image.Resampling.BICUBIC))
    desk = rng.uniform(0.2, 0.38) + 0.04 * grain + rng.normal(0.0, 0.015, (height, width))
    note_side = int(rng.uniform(0.45, 0.65) * height)
    note = np.full((note_side, note_side), rng.uniform(0.7, 0.9))
    ink = _scaled(ink, rng.uniform(0.45, 0.65) * note_side)
    top = int(rng.uniform(0.1, 0.9) * (note_side - ink.shape[0]))
    left = int(rng.uniform(0.1, 0.9) * (note_side - ink.shape[1]))
    _write(note, ink, (top, left), rng.uniform(0.08, 0.25))
    outline = Image.new("F", (note_side, note_side), 1.0)
    tilt = rng.uniform(-10, 10)
    note = Image.fromarray(note.astype(np.float32)).rotate(tilt, resample=Image.Resampling.BILINEAR, expand=True)
    on_note = np.asarray(outline.rotate(tilt, resample=Image.Resampling.BILINEAR, expand=True))
    top = int(rng.uniform(0.08, 0.92) * (height - on_note.shape[0]))
    left = int(rng.uniform(0.08, 0.92) * (width - on_note.shape[1]))
    region = desk[top:top + on_note.shape[0], left:left + on_note.shape[1]]
    region[...] = region * (1 - on_note) + np.asarray(note)
    return desk


def _illumination(shape, rng):
    """Light falling off linearly across the page in a random direction, by 15 to 40 percent."""
    height, width = shape
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.add.outer(np.sin(angle) * np.arange(height), np.cos(angle) * np.arange(width))
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    return 1.0 - rng.uniform(0.15, 0.4) * ramp


def _shadow(shape, rng):
    """A soft-edged shadow over one side of the page, away from its centre, darkening it by 30 to 50 percent."""
    height, width = shape
    mask = Image.new("F", (width, height), 0.0)
    corner = rng.integers(4)
    x = width * (0.15 if corner % 2 == 0 else 0.85)
    y = height * (0.15 if corner < 2 else 0.85)
    reach = rng.uniform(0.3, 0.5) * min(shape)
    ImageDraw.Draw(mask).ellipse((x - 1.5 * reach, y - reach, x + 1.5 * reach, y + reach), fill=1.0)
    soft = np.asarray(Image.fromarray((np.asarray(mask) * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.08 * min(shape))), dtype=np.float64) / 255
    return 1.0 - rng.uniform(0.3, 0.5) * soft


def _blurred(light, rng):
    """The lens's slight blur (Gaussian, 0.6 to 1.4 pixels): the picture as 8-bit grey levels."""
    image = Image.fromarray(np.clip(light * 255, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4)))


def _noisy(image, rng):
    """Sensor noise: Gaussian, 3 to 7 grey levels."""
    noise = rng.standard_normal(image.size[::-1], dtype=np.float32) * rng.uniform(3, 7)
    levels = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(np.round(levels), 0, 255).astype(np.uint8))


def _jpeg(image, rng):
    """The photo saved as a JPEG of moderate quality and decoded again, with its block artefacts."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(*JPEG_QUALITY)))
    buffer.seek(0)
    decoded = Image.open(buffer)
    decoded.load()
    return decoded
