#!/usr/bin/env python3
"""Generates the twelve sample "travel photos" in this folder, and photos.json.

Every picture is drawn from code (gradients, value noise, polygons); nothing is
taken from elsewhere. The output is dedicated to the public domain under CC0 1.0
(https://creativecommons.org/publicdomain/zero/1.0/), like this script.

Deterministic: every scene draws from its own seeded numpy Generator, so the
same versions below give byte-identical files.

Tested with:
    Python 3.11.7, numpy==2.4.6, pillow==13.0.0,
    ImageMagick 6.9.11-60 (Debian 12 package `imagemagick`, for the CMYK file),
    exiftool 12.57 (Debian `libimage-exiftool-perl`, only to check the result).

Regenerate (from the repository root):
    python3 -m venv /tmp/assetvenv
    /tmp/assetvenv/bin/pip install numpy==2.4.6 pillow==13.0.0
    /tmp/assetvenv/bin/python assets/photos/generate.py

Special cases for the decoder tests (see README.md):
    02 grayscale JPEG, 05 JPEG with EXIF Orientation=6, 06 PNG with alpha,
    08 WebP (lossy), 09 CMYK JPEG (converted by ImageMagick), others baseline
    RGB JPEG at quality 85.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20260214
JPEG_QUALITY = 85


# --------------------------------------------------------------------------
# drawing primitives (float images, H x W x 3, values 0..1)
# --------------------------------------------------------------------------

def hexc(s):
    s = s.lstrip("#")
    return np.array([int(s[i:i + 2], 16) / 255.0 for i in (0, 2, 4)])


def grid(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y, x


def gradient(t, stops):
    """Colour for each value of t (any shape) from [(pos, '#rrggbb'), ...]."""
    pos = [p for p, _ in stops]
    cols = np.array([hexc(c) for _, c in stops])
    out = np.empty(t.shape + (3,), np.float32)
    for ch in range(3):
        out[..., ch] = np.interp(t, pos, cols[:, ch])
    return out


def sky(h, w, stops):
    t = np.linspace(0, 1, h, dtype=np.float32)
    col = gradient(t, stops)
    return np.repeat(col[:, None, :], w, axis=1)


def fbm1d(rng, n, octaves=7, base=3, persistence=0.5):
    """Fractal value noise along a line, roughly in -1..1."""
    out = np.zeros(n, np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        k = base * 2 ** o
        pts = rng.uniform(-1, 1, k + 2)
        xs = np.linspace(0, k, n)
        i = np.floor(xs).astype(int)
        f = xs - i
        f = f * f * (3 - 2 * f)
        out += amp * (pts[i] * (1 - f) + pts[i + 1] * f)
        total += amp
        amp *= persistence
    return out / total


def fbm2d(rng, h, w, octaves=6, base=3, persistence=0.5):
    """Fractal value noise over the image, roughly in -1..1."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    aspect = w / h
    for o in range(octaves):
        gy = base * 2 ** o + 1
        gx = int(round(gy * aspect)) + 1
        small = rng.uniform(-1, 1, (gy, gx)).astype(np.float32)
        big = Image.fromarray(small, "F").resize((w, h), Image.BICUBIC)
        out += amp * np.asarray(big)
        total += amp
        amp *= persistence
    return out / total


def blend(img, mask, color):
    m = np.clip(mask, 0, 1)[..., None]
    img *= 1 - m
    img += m * color


def glow(img, cx, cy, radius, color, strength=1.0):
    h, w, _ = img.shape
    y, x = grid(h, w)
    d2 = ((x - cx) ** 2 + (y - cy) ** 2) / radius ** 2
    g = strength * np.exp(-d2)[..., None]
    # screen blend
    img[:] = 1 - (1 - img) * (1 - g * hexc(color))


def disc(img, cx, cy, r, color, soft=1.5):
    h, w, _ = img.shape
    y, x = grid(h, w)
    d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    blend(img, (r - d) / soft + 0.5, hexc(color))


def ridge_mask(h, w, ridge):
    y, _ = grid(h, w)
    return np.clip(y - ridge[None, :] + 0.5, 0, 1)


def layer(img, ridge, top, bottom, rng=None, texture=0.0, depth=None):
    """Fills everything below the line `ridge` with a vertical gradient."""
    h, w, _ = img.shape
    y, _ = grid(h, w)
    m = ridge_mask(h, w, ridge)
    span = depth if depth else max(1.0, h - ridge.min())
    t = np.clip((y - ridge[None, :]) / span, 0, 1)
    col = gradient(t, [(0, top), (1, bottom)])
    if texture and rng is not None:
        col *= (1 + texture * fbm2d(rng, h, w, octaves=5, base=6))[..., None]
    blend(img, m, col)


def shapes(h, w, draw_fn, ss=2):
    """Anti-aliased coverage mask of whatever draw_fn(draw, scale) draws."""
    im = Image.new("L", (w * ss, h * ss), 0)
    draw_fn(ImageDraw.Draw(im), ss)
    im = im.resize((w, h), Image.BOX)
    return np.asarray(im, np.float32) / 255.0


def reflect(img, y0, rng, water, mix=0.55, wave=6.0, darken=0.8):
    """Mirrors the picture above row y0 into the water below it, with ripples."""
    h, w, _ = img.shape
    rows = h - y0
    d = np.arange(rows, dtype=np.float32)
    src_y = np.clip(y0 - 1 - d, 0, h - 1).astype(int)
    # ripple noise: fine across the rows, stretched 12x along them
    small = fbm2d(rng, rows, max(8, w // 12), octaves=4, base=12)
    n = np.asarray(Image.fromarray(small, "F").resize((w, rows), Image.BICUBIC))
    stretch = 0.3 + 2.0 * d / rows
    ripple = np.sin(n * 14)
    shift = (wave * stretch)[:, None] * ripple
    _, x = grid(rows, w)
    src_x = np.clip(x + shift, 0, w - 1).astype(int)
    refl = img[src_y[:, None], src_x] * darken
    refl *= (1 + 0.07 * ripple)[..., None]
    t = (d / rows)[:, None, None]
    water_col = hexc(water) if isinstance(water, str) else water
    m = mix * (1 - 0.6 * t)
    img[y0:] = refl * m + water_col * (1 - m)


def vignette(img, strength=0.28):
    h, w, _ = img.shape
    y, x = grid(h, w)
    r2 = ((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2
    img *= (1 - strength * np.clip(r2 / 2, 0, 1) ** 1.5)[..., None]


def stars(img, rng, n, ymax, color="#ffffff", size=1.3):
    h, w, _ = img.shape
    xs = rng.uniform(0, w, n)
    ys = rng.uniform(0, ymax, n) * rng.uniform(0.3, 1, n) ** 0.3
    br = rng.uniform(0.25, 1, n) ** 2
    col = hexc(color)
    for x, y, b in zip(xs, ys, br):
        r = size * (0.6 + 1.6 * b)
        x0, x1 = int(max(0, x - 3 * r)), int(min(w, x + 3 * r + 1))
        y0, y1 = int(max(0, y - 3 * r)), int(min(h, y + 3 * r + 1))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        g = b * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (r * r))
        img[y0:y1, x0:x1] = 1 - (1 - img[y0:y1, x0:x1]) * (1 - g[..., None] * col)


def buildings(img, rng, base_y, x0, x1, hmin, hmax, color, lit, wmin=60, wmax=170,
              win=(8, 13), pitch=(20, 28), lit_colors=("#ffd58a", "#ffe9b8", "#ffc870"),
              spires=0):
    """A row of lit office blocks standing on base_y between x0 and x1."""
    h, w, _ = img.shape
    col = hexc(color)
    lcols = [hexc(c) for c in lit_colors]
    x = x0
    tops = []
    while x < x1:
        bw = int(rng.uniform(wmin, wmax))
        bh = int(rng.uniform(hmin, hmax) * (1 if rng.random() > 0.15 else 1.45))
        top = base_y - bh
        xa, xb = int(x), int(min(w, x + bw))
        if xb <= xa:
            break
        img[max(0, top):base_y, xa:xb] = col * rng.uniform(0.85, 1.15)
        tops.append((xa, xb, top))
        # windows
        px, py = pitch
        ww, wh = win
        for wy in range(top + 14, base_y - wh, py):
            if wy < 0:
                continue
            for wx in range(xa + 8, xb - ww - 6, px):
                if rng.random() < lit:
                    c = lcols[rng.integers(len(lcols))] * rng.uniform(0.6, 1.0)
                    img[wy:wy + wh, wx:wx + ww] = c
        x = xb + int(rng.uniform(0, 14))
    for _ in range(spires):
        xa, xb, top = tops[rng.integers(len(tops))]
        cx = (xa + xb) // 2
        img[max(0, top - 120):top, cx - 3:cx + 3] = col
        img[max(0, top - 124):max(0, top - 118), cx - 3:cx + 3] = hexc("#ff4a3a")
    return tops


def pine(draw, s, x, y, hgt, fill=255):
    """A stylised fir tree with its foot at (x, y)."""
    tiers = 4
    for k in range(tiers):
        ty = y - hgt * (0.15 + 0.85 * k / tiers)
        bw = hgt * 0.28 * (1 - k / (tiers + 1))
        draw.polygon([((x - bw) * s, ty * s), ((x + bw) * s, ty * s),
                      (x * s, (ty - hgt * 0.42) * s)], fill=fill)
    draw.rectangle([(x - hgt * 0.03) * s, (y - hgt * 0.16) * s,
                    (x + hgt * 0.03) * s, y * s], fill=fill)


def to_image(img):
    return Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------

def new_york(rng, w=2400, h=1600):
    """Manhattan at dusk across the river."""
    img = sky(h, w, [(0, "#1b2350"), (0.35, "#4a3f7a"), (0.58, "#c2668a"),
                     (0.7, "#f29e6b"), (1, "#f6c27a")])
    glow(img, w * 0.62, h * 0.7, 500, "#ffb070", 0.6)
    horizon = int(h * 0.72)
    # distant hazy blocks
    buildings(img, rng, horizon, -20, w, 120, 330, "#6a5080", lit=0.04, wmin=50, wmax=120)
    # main skyline
    buildings(img, rng, horizon, -40, w, 160, 520, "#241c3a", lit=0.33, spires=3)
    # a stepped art-deco tower with a mast
    cx = int(w * 0.36)
    for i, (hw, top) in enumerate([(90, 740), (66, 640), (44, 560), (24, 500)]):
        img[horizon - top:horizon, cx - hw:cx + hw] = hexc("#1d1630")
    img[horizon - 700:horizon - 500, cx - 4:cx + 4] = hexc("#1d1630")
    for wy in range(horizon - 720, horizon - 30, 26):
        for wx in range(cx - 80, cx + 80, 20):
            hw = 90 if wy > horizon - 640 else 66 if wy > horizon - 560 else 44
            if abs(wx - cx) < hw - 12 and rng.random() < 0.35:
                img[wy:wy + 12, wx:wx + 8] = hexc("#ffdc96")
    img[horizon - 706:horizon - 698, cx - 4:cx + 4] = hexc("#ff5a40")
    reflect(img, horizon, rng, "#1a2040", mix=0.7, wave=8)
    vignette(img)
    return to_image(img)


def central_park_snow(rng, w=2400, h=1600):
    """Snowy park with firs under a pale winter sun (saved as grayscale)."""
    img = sky(h, w, [(0, "#8fa3b8"), (0.5, "#c9d3dc"), (1, "#eef0f2")])
    glow(img, w * 0.7, h * 0.22, 260, "#fff6e0", 0.8)
    disc(img, w * 0.7, h * 0.22, 60, "#fffdf5", soft=8)
    # low clouds
    n = fbm2d(rng, h, w, octaves=5, base=2)
    y, _ = grid(h, w)
    blend(img, np.clip((n - 0.05) * 3, 0, 1) * np.clip(1 - y / (h * 0.55), 0, 1) * 0.45,
          hexc("#e6eaee"))
    # far skyline ghost
    buildings(img, rng, int(h * 0.6), 0, w, 60, 220, "#a9b4bf", lit=0.0, wmin=40, wmax=110)
    x = np.arange(w)
    for k, (base, amp, top, bot) in enumerate([(0.62, 40, "#bcc5ce", "#d7dde3"),
                                               (0.7, 60, "#dde2e7", "#f2f4f6"),
                                               (0.8, 70, "#eef1f4", "#ffffff")]):
        ridge = h * base + amp * fbm1d(rng, w, octaves=5, base=2)
        layer(img, ridge, top, bot, rng, texture=0.02)
        trees = shapes(h, w, lambda d, s: [pine(d, s, xx, ridge[int(xx)] + 8,
                                                    rng.uniform(90, 200) * (1 + k * 0.6))
                                               for xx in rng.uniform(0, w - 1, 9 + 4 * k)])
        shade = ["#6f7d88", "#4d5a63", "#2b343a"][k]
        blend(img, trees, hexc(shade))
        # snow on the branches
        snowy = trees * np.clip((fbm2d(rng, h, w, octaves=3, base=90) - 0.15) * 4, 0, 1) * 0.55
        blend(img, snowy, hexc("#f4f6f8"))
    # a few large flakes
    stars(img, rng, 260, h, color="#ffffff", size=2.2)
    vignette(img, 0.2)
    return to_image(img).convert("L")


def lisbon(rng, w=2400, h=1600):
    """Sunset over the Tagus, with a red suspension bridge."""
    img = sky(h, w, [(0, "#3a4a8c"), (0.3, "#b06a9c"), (0.5, "#f08a6a"),
                     (0.62, "#ffc27a"), (1, "#ffe2a0")])
    horizon = int(h * 0.62)
    sx, sy = w * 0.3, horizon - 110
    glow(img, sx, sy, 420, "#ffb060", 0.7)
    disc(img, sx, sy, 95, "#fff1c8", soft=3)
    # streaky clouds
    n = fbm2d(rng, h, w, octaves=5, base=2)
    y, x = grid(h, w)
    streak = np.clip((np.sin(y / 18 + n * 6) - 0.55) * 2.5, 0, 1)
    patches = np.clip(fbm2d(rng, h, w, 4, 2) * 3 + 0.3, 0, 1)
    blend(img, streak * patches * np.clip(1 - np.abs(y - h * 0.25) / (h * 0.18), 0, 1) * 0.5,
          hexc("#f7a0a0"))
    # hills on the far bank with a pastel town
    xs = np.arange(w)
    ridge = horizon - 40 - 220 * np.clip((xs - w * 0.45) / (w * 0.3), 0, 1) ** 0.7 \
        * (0.8 + 0.4 * fbm1d(rng, w, 6, 2))
    layer(img, ridge, "#8c6a8a", "#6d5378")
    pastel = ["#f6d7a7", "#f2b5a0", "#fbe7c6", "#e7c3d1", "#cfe0e8", "#fff4d9"]
    for _ in range(380):
        hx = int(rng.uniform(w * 0.5, w - 20))
        if ridge[hx] + 10 > horizon - 12:
            continue
        hy = int(rng.uniform(ridge[hx] + 10, horizon - 12))
        bw, bh = int(rng.uniform(10, 18)), int(rng.uniform(8, 13))
        img[hy:hy + bh, hx:hx + bw] = hexc(pastel[rng.integers(len(pastel))]) * 0.82
        img[hy - 3:hy, hx:hx + bw] = hexc("#b4573e") * 0.85
    # the bridge
    deck = horizon - 95
    red = hexc("#c0392b")
    t1, t2 = int(w * 0.18), int(w * 0.62)
    top = deck - 330
    for tx in (t1, t2):
        img[top:horizon, tx - 12:tx + 12] = red * 0.8
        img[top:top + 14, tx - 22:tx + 22] = red * 0.8
    img[deck:deck + 16, :] = red * 0.7
    img[deck + 16:deck + 22, :] = red * 0.45
    mask = np.zeros((h, w), np.float32)
    xs = np.arange(w)
    mid = (t1 + t2) / 2
    half = (t2 - t1) / 2
    cable = np.where((xs > t1) & (xs < t2), top + 8 + (1 - ((xs - mid) / half) ** 2) * 300,
                     top + 8 + np.clip(np.abs(xs - mid) - half, 0, None) * 300 / (w * 0.25))
    cable = np.minimum(cable, deck)
    mask[np.clip(cable.astype(int), 0, h - 1), xs] = 1
    mask[np.clip(cable.astype(int) + 1, 0, h - 1), xs] = 1
    mask[np.clip(cable.astype(int) + 2, 0, h - 1), xs] = 1
    for hx in range(0, w, 36):
        mask[int(cable[hx]):deck, hx] = 0.8
    blend(img, mask, red * 0.65)
    reflect(img, horizon, rng, "#6a5a8a", mix=0.6, wave=10)
    # glitter path under the sun
    hh = h - horizon
    yy, xx = grid(hh, w)
    small = fbm2d(rng, hh, w // 16, octaves=4, base=30)
    streaks = np.asarray(Image.fromarray(small, "F").resize((w, hh), Image.BICUBIC))
    gl = np.exp(-((xx - sx) / (60 + yy * 0.6)) ** 2) * np.clip(streaks * 4 - 0.3, 0, 1)
    img[horizon:] = 1 - (1 - img[horizon:]) * (1 - gl[..., None] * hexc("#fff0c0") * 0.9)
    vignette(img)
    return to_image(img)


def porto(rng, w=2400, h=1600):
    """The Douro at blue hour: steep banks, lit houses, an iron arch bridge."""
    img = sky(h, w, [(0, "#101a3c"), (0.3, "#2a3f78"), (0.55, "#6a6fa8"),
                     (0.7, "#d89a9a"), (1, "#f0c090")])
    stars(img, rng, 120, h * 0.3, size=1.1)
    river = int(h * 0.74)
    xs = np.arange(w, dtype=np.float32)
    # banks: high on both sides, valley in the middle
    valley = 1 - np.exp(-((xs - w * 0.5) / (w * 0.22)) ** 2)
    ridge_l = river - 120 - 520 * valley * (xs < w * 0.5) + 25 * fbm1d(rng, w, 6, 4)
    ridge_r = river - 120 - 460 * valley * (xs >= w * 0.5) + 25 * fbm1d(rng, w, 6, 4)
    ridge = np.minimum(ridge_l, ridge_r)
    layer(img, ridge, "#2a2440", "#15142a")
    warm = ("#ffcf80", "#ffb860", "#ffe2a8")
    for _ in range(1100):
        hx = int(rng.uniform(0, w - 20))
        top = ridge[hx] + 10
        if top > river - 20:
            continue
        hy = int(rng.uniform(top, river - 10))
        bw, bh = int(rng.uniform(14, 30)), int(rng.uniform(12, 24))
        img[hy:hy + bh, hx:hx + bw] = hexc(["#3b3150", "#463a5c", "#2f2945"][rng.integers(3)])
        if rng.random() < 0.55:
            img[hy + 4:hy + 9, hx + 4:hx + 9] = hexc(warm[rng.integers(3)])
    # the arch bridge
    y, x = grid(h, w)
    cx, span, rise = w * 0.5, w * 0.26, 420
    deck = river - rise - 40
    arch_y = river - rise * (1 - ((x - cx) / span) ** 2)
    arch = np.clip(1 - np.abs(y - arch_y) / 16, 0, 1) * (np.abs(x - cx) < span)
    inner = np.clip(1 - np.abs(y - (arch_y + 40)) / 8, 0, 1) * (np.abs(x - cx) < span * 0.93)
    deckm = ((y > deck) & (y < deck + 22) & (np.abs(x - cx) < span * 1.9)).astype(np.float32)
    struts = ((np.mod(x - cx, 44) < 4) & (y > deck) & (y < arch_y) &
              (np.abs(x - cx) < span)).astype(np.float32)
    lattice = np.clip(arch + inner + deckm + struts, 0, 1)
    blend(img, lattice, hexc("#1a1626"))
    for lx in range(int(cx - span * 1.9), int(cx + span * 1.9), 70):
        glow_y = deck - 14
        img[glow_y:glow_y + 6, lx:lx + 6] = hexc("#ffe0a0")
    reflect(img, river, rng, "#1b2448", mix=0.75, wave=7)
    vignette(img)
    return to_image(img)


def rio(rng, w=1600, h=2400):
    """Sugar Loaf over the bay on a bright afternoon (an upright portrait)."""
    img = sky(h, w, [(0, "#2f78c4"), (0.35, "#67a9e0"), (0.55, "#b8dcf2"), (1, "#e6f4fb")])
    sx, sy = w * 0.72, h * 0.11
    glow(img, sx, sy, 380, "#fff6d0", 0.8)
    disc(img, sx, sy, 80, "#fffbe8", soft=3)
    y, x = grid(h, w)
    n = fbm2d(rng, h, w, octaves=6, base=3)
    cloud = np.clip((n + 0.05) * 4, 0, 1) * np.clip(1 - np.abs(y - h * 0.33) / (h * 0.1), 0, 1)
    blend(img, cloud * 0.85, hexc("#ffffff"))
    horizon = int(h * 0.62)
    # far mountains across the bay
    ridge = horizon - 140 - 90 * fbm1d(rng, w, 6, 2)
    layer(img, ridge, "#7ea3b8", "#8fb4c4")
    # the sea
    sea_t = np.clip((y - horizon) / (h - horizon), 0, 1)
    sea = gradient(sea_t, [(0, "#2a8fb0"), (0.6, "#3fb7c0"), (1, "#7fd8cc")])
    sea *= (1 + 0.05 * fbm2d(rng, h, w, 5, 10))[..., None]
    blend(img, np.clip(y - horizon + 0.5, 0, 1), sea)
    # Sugar Loaf and Urca: steep rounded domes standing in the water
    xs = np.arange(w, dtype=np.float32)

    def dome(cx, half, height):
        u = np.clip(np.abs(xs - cx) / half, 0, 1)
        return height * (0.5 + 0.5 * np.cos(np.pi * u)) ** 0.4

    foot = horizon + 110
    peak = np.maximum(dome(w * 0.64, 300, 820), dome(w * 0.24, 380, 400))
    peak += 6 * fbm1d(rng, w, 6, 8) * (peak > 1)
    ridge = np.where(peak > 1, foot - peak, h + 10)
    rockm = ridge_mask(h, w, ridge) * np.clip(foot - y + 0.5, 0, 1)
    t = np.clip((y - (foot - 820)) / 820, 0, 1)
    col = gradient(t, [(0, "#4a6a52"), (0.5, "#355540"), (1, "#1f3428")])
    col *= (1 + 0.12 * fbm2d(rng, h, w, 5, 6))[..., None]
    blend(img, rockm, col)
    bare = rockm * np.clip(fbm2d(rng, h, w, 5, 5) * 3, 0, 1) * np.clip((x - w * 0.5) / 200, 0, 1)
    blend(img, bare * 0.5, hexc("#7a776c"))
    blend(img, np.clip(1 - np.abs(y - foot) / 4, 0, 1) * (peak[None, :] > 1) * 0.8, hexc("#e8fbff"))
    # cable car line from the small dome to the big one
    m = shapes(h, w, lambda d, s: d.line([(w * 0.24 * s, (foot - 400) * s),
                                          (w * 0.64 * s, (foot - 820) * s)], fill=255, width=2 * s))
    blend(img, m * 0.8, hexc("#2a2a2a"))
    # beach and surf at the bottom
    shore = h * 0.84 + 30 * fbm1d(rng, w, 5, 2)
    layer(img, shore, "#f3e2bc", "#e6cd98", rng, texture=0.05)
    foam = np.clip(1 - np.abs(y - shore[None, :] + 10) / 8, 0, 1) + \
        np.clip(1 - np.abs(y - shore[None, :] + 60 + 10 * np.sin(x / 90)) / 5, 0, 1) * 0.7
    blend(img, foam * 0.85, hexc("#ffffff"))
    # a few sailing boats
    for bx, by in [(w * 0.12, horizon + 190), (w * 0.42, horizon + 250), (w * 0.9, horizon + 150)]:
        sail = shapes(h, w, lambda d, s: d.polygon([(bx * s, by * s), ((bx + 40) * s, by * s),
                                                     (bx * s, (by - 90) * s)], fill=255))
        blend(img, sail, hexc("#ffffff"))
        img[int(by):int(by) + 8, int(bx - 20):int(bx + 50)] = hexc("#5a4030")
    vignette(img, 0.2)
    return to_image(img)


def copacabana_stamp(rng, w=1500, h=1000):
    """A beach sunset with palms, framed as a perforated postage stamp (RGBA)."""
    img = sky(h, w, [(0, "#4b2a7b"), (0.35, "#c4457e"), (0.6, "#ff8a5b"), (1, "#ffd27a")])
    horizon = int(h * 0.6)
    sx, sy = w * 0.55, horizon - 40
    glow(img, sx, sy, 300, "#ffb070", 0.8)
    disc(img, sx, sy, 80, "#fff0c0", soft=2)
    # sea with bands
    y, x = grid(h, w)
    reflect(img, horizon, rng, "#7a3a7a", mix=0.55, wave=6)
    # beach
    shore = h * 0.82 + 20 * fbm1d(rng, w, 5, 2) - (x[0] / w) * 40
    layer(img, shore, "#c08a6a", "#7a5048", rng, texture=0.05)
    # palms
    def palm(d, s, bx, by, hgt, lean):
        pts = [(bx + lean * (i / 20) ** 2, by - hgt * i / 20) for i in range(21)]
        for i, ((x0, y0), (x1, y1)) in enumerate(zip(pts, pts[1:])):
            d.line([(x0 * s, y0 * s), (x1 * s, y1 * s)], fill=255, width=int((18 - 8 * i / 20) * s))
        tx, ty = pts[-1]
        for k in range(11):
            ang = -np.pi + k * np.pi / 10 + 0.15 * np.sin(k * 7.1)  # fan over the top half
            length = hgt * (0.3 + 0.08 * np.cos(k * 3.3))
            spine = []
            for j in range(16):
                t = j / 15
                fx = tx + np.cos(ang) * length * t
                fy = ty + np.sin(ang) * length * t * 0.6 + length * 0.55 * t * t
                spine.append((fx, fy))
            left, right = [], []
            for j, (fx, fy) in enumerate(spine):
                t = j / 15
                wdt = length * 0.09 * np.sin(np.pi * min(1, t * 1.1)) + 1.5
                nx, ny = -np.sin(ang), np.cos(ang)
                left.append(((fx + nx * wdt) * s, (fy + ny * wdt) * s))
                right.append(((fx - nx * wdt) * s, (fy - ny * wdt) * s))
            d.polygon(left + right[::-1], fill=255)
            # ragged leaflets along the frond
            for j in range(2, 15):
                fx, fy = spine[j]
                for sgn in (-1, 1):
                    d.line([(fx * s, fy * s), ((fx + sgn * 0.5 * nx * length * 0.18 + np.cos(ang) * 8) * s,
                                               (fy + length * 0.14) * s)], fill=255, width=int(3 * s))
        d.ellipse([(tx - 14) * s, (ty - 10) * s, (tx + 14) * s, (ty + 14) * s], fill=255)

    m = shapes(h, w, lambda d, s: (palm(d, s, w * 0.12, h * 0.95, 560, 120),
                                   palm(d, s, w * 0.2, h * 0.97, 430, 160),
                                   palm(d, s, w * 0.88, h * 0.96, 500, -140)))
    blend(img, m, hexc("#1c0f24"))
    vignette(img, 0.2)
    rgb = to_image(img)
    # stamp: white margin, perforated edge; outside is transparent
    border, hole, pitch = 60, 16, 48
    W, H = w + 2 * border, h + 2 * border
    out = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    paper = Image.new("RGBA", (W, H), (250, 246, 236, 255))
    out.paste(paper, (0, 0))
    out.paste(rgb.convert("RGBA"), (border, border))
    ss = 3
    alpha = Image.new("L", (W * ss, H * ss), 255)
    d = ImageDraw.Draw(alpha)
    for px in range(pitch // 2, W, pitch):
        for py in (0, H):
            d.ellipse([(px - hole) * ss, (py - hole) * ss, (px + hole) * ss, (py + hole) * ss], fill=0)
    for py in range(pitch // 2, H, pitch):
        for px in (0, W):
            d.ellipse([(px - hole) * ss, (py - hole) * ss, (px + hole) * ss, (py + hole) * ss], fill=0)
    alpha = alpha.resize((W, H), Image.BOX)
    out.putalpha(alpha)
    # fully transparent pixels carry no colour (compresses better, and is tidy)
    arr = np.asarray(out).copy()
    arr[arr[..., 3] == 0] = 0
    return Image.fromarray(arr, "RGBA")


def buenos_aires(rng, w=1600, h=2400):
    """The Obelisk at golden hour, jacarandas in bloom (portrait)."""
    img = sky(h, w, [(0, "#5a6fb0"), (0.3, "#a58cc0"), (0.55, "#f0b0a0"), (0.75, "#ffd6a0"), (1, "#ffe8c0")])
    glow(img, w * 0.5, h * 0.66, 600, "#ffc890", 0.6)
    base = int(h * 0.8)
    # low city blocks on both sides
    for side in (0, 1):
        x0, x1 = (0, int(w * 0.36)) if side == 0 else (int(w * 0.64), w)
        buildings(img, rng, base, x0, x1, 200, 620, "#5b4a6a", lit=0.25, wmin=90, wmax=200,
                  lit_colors=("#ffe0b0", "#ffd090"))
    # the obelisk
    cx = w * 0.5
    top, foot = h * 0.12, base
    ob = shapes(h, w, lambda d, s: d.polygon([((cx - 62) * s, foot * s), ((cx + 62) * s, foot * s),
                                               ((cx + 40) * s, (top + 60) * s), (cx * s, top * s),
                                               ((cx - 40) * s, (top + 60) * s)], fill=255))
    y, x = grid(h, w)
    lit_side = np.where((x < cx)[..., None], hexc("#f6ead8"), hexc("#c9b6b0"))
    blend(img, ob, lit_side)
    img[int(top + 260):int(top + 275), int(cx - 8):int(cx + 8)] = hexc("#3a3040")
    # jacarandas: purple blobs along the avenue
    n = fbm2d(rng, h, w, octaves=6, base=8)
    for tx in list(rng.uniform(0, w * 0.4, 5)) + list(rng.uniform(w * 0.6, w, 5)):
        ty = base - rng.uniform(60, 260)
        r = rng.uniform(110, 200)
        d = np.sqrt((x - tx) ** 2 + ((y - ty) * 1.3) ** 2) / r
        blob = np.clip((1 - d + 0.35 * n) * 6, 0, 1)
        col = gradient(np.clip((y - ty + r) / (2 * r), 0, 1), [(0, "#c7a0f0"), (1, "#6a4a9a")])
        blend(img, blob, col)
        img[int(ty):base, int(tx) - 8:int(tx) + 8] = hexc("#3a2a30")
    # the avenue in perspective
    road_t = np.clip((y - base) / (h - base), 0, 1)
    road = gradient(road_t, [(0, "#8a7a80"), (1, "#4a4048")])
    blend(img, (y >= base).astype(np.float32), road)
    for k in (-1, 1):
        lane = np.abs((x - cx) - k * 30 * (1 + road_t * 14)) < (2 + road_t * 10)
        dash = np.mod(np.sqrt(road_t + 1e-3) * 30, 1) < 0.5
        blend(img, (lane & dash & (y > base)).astype(np.float32) * 0.9, hexc("#f4e6c0"))
    # car lights
    for _ in range(40):
        t = rng.uniform(0.05, 1)
        lx = cx + rng.choice([-1, 1]) * rng.uniform(40, 200) * (1 + t * 4)
        ly = base + t * (h - base)
        c = "#ff4030" if lx > cx else "#fff0c0"
        glow(img[int(ly) - 40:int(ly) + 40, max(0, int(lx) - 40):int(lx) + 40], 40, 40, 6 + t * 10, c, 1.0) \
            if 40 < lx < w - 40 else None
    vignette(img, 0.22)
    return to_image(img)


def pampas(rng, w=2400, h=1600):
    """Golden grass to the horizon, a lone ombú tree, big clouds."""
    img = sky(h, w, [(0, "#3f7fc0"), (0.45, "#8fc0e4"), (0.65, "#d8e8ec"), (1, "#f4f0d8")])
    y, x = grid(h, w)
    n = fbm2d(rng, h, w, octaves=7, base=3)
    puff = np.clip((n + 0.15 * np.sin(x / 300) - 0.05) * 3.5, 0, 1) * \
        np.clip(1 - np.abs(y - h * 0.28) / (h * 0.22), 0, 1)
    shade = np.clip(0.93 + fbm2d(rng, h, w, 4, 6) * 0.5 - 0.12 * (y - h * 0.15) / (h * 0.3), 0.72, 1)
    blend(img, puff, shade[..., None] * hexc("#fffaf2"))
    horizon = int(h * 0.63)
    glow(img, w * 0.15, horizon - 40, 420, "#fff0c0", 0.35)
    ridge = horizon + 6 * fbm1d(rng, w, 6, 4)
    layer(img, ridge, "#b8b878", "#d8a440", rng, texture=0.08, depth=h - horizon)
    # grass streaks in the foreground
    g = fbm2d(rng, h, w, 4, 60)
    streak = np.clip(np.sin(x / 5 + g * 20) * 0.5 + 0.5, 0, 1) * np.clip((y - h * 0.8) / (h * 0.2), 0, 1)
    blend(img, streak * 0.25, hexc("#8a6a20"))
    # the tree
    tx, ty = w * 0.68, horizon + 30
    img[int(ty - 140):int(ty), int(tx - 16):int(tx + 16)] = hexc("#3a2a1a")
    d = np.sqrt(((x - tx) / 1.6) ** 2 + (y - (ty - 230)) ** 2) / 150
    crown = np.clip((1 - d + 0.3 * fbm2d(rng, h, w, 5, 12)) * 5, 0, 1)
    col = gradient(np.clip((y - ty + 380) / 300, 0, 1), [(0, "#5a7a3a"), (1, "#2c4a22")])
    blend(img, crown, col)
    # fence posts receding
    for i in range(24):
        t = i / 23
        px = w * 0.05 + t * w * 0.42
        py = h * 0.98 - t * (h * 0.98 - horizon - 10)
        ph = 120 * (1 - t) + 10
        img[int(py - ph):int(py), int(px):int(px + 6 + 10 * (1 - t))] = hexc("#4a3a28")
    vignette(img, 0.2)
    return to_image(img)


def la_mancha(rng, w=2400, h=1600):
    """White windmills on a dry ridge south of Madrid (saved as CMYK)."""
    img = sky(h, w, [(0, "#1f6fb8"), (0.5, "#6fb0e0"), (0.8, "#cde4ee"), (1, "#f2ead6")])
    y, x = grid(h, w)
    n = fbm2d(rng, h, w, octaves=6, base=2)
    blend(img, np.clip((n - 0.2) * 3, 0, 1) * np.clip(1 - y / (h * 0.45), 0, 1) * 0.7, hexc("#ffffff"))
    horizon = int(h * 0.62)
    ridge = horizon - 60 - 50 * fbm1d(rng, w, 6, 2)
    layer(img, ridge, "#b79a78", "#a88a64")
    ridge2 = horizon - 10 - 220 * np.exp(-((np.arange(w) - w * 0.55) / (w * 0.3)) ** 2) + 12 * fbm1d(rng, w, 7, 4)
    layer(img, ridge2, "#c9a45e", "#9a6a32", rng, texture=0.1, depth=h - horizon + 200)
    # ploughed field rows in the foreground
    field = h * 0.8 + 20 * fbm1d(rng, w, 4, 2)
    layer(img, field, "#a0522d", "#6b3a1e", rng, texture=0.08)
    rows = np.clip(np.sin((x - w / 2) / np.maximum(y - h * 0.62, 1) * 50) * 2, 0, 1) * (y > field[None, :])
    blend(img, rows * 0.25, hexc("#4a2612"))
    # olive trees dotted on the slope
    for _ in range(70):
        ox = rng.uniform(0, w)
        oy = rng.uniform(ridge2[int(ox)] + 40, field[int(ox)])
        r = rng.uniform(8, 18) * (1 + (oy - horizon) / 300)
        y0, y1, x0, x1 = int(oy - 2 * r), int(oy + r), int(ox - 2 * r), int(ox + 2 * r)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        m = np.clip((1 - np.sqrt(((xx - ox) / 1.4) ** 2 + (yy - oy + r) ** 2) / r) * 4, 0, 1)
        sub = img[y0:y1, x0:x1]
        blend(sub, m[:sub.shape[0], :sub.shape[1]], hexc("#5a6a3a"))

    def windmill(d, s, cx, gy, hgt, ang):
        bw = hgt * 0.2
        d.polygon([((cx - bw) * s, gy * s), ((cx + bw) * s, gy * s),
                   ((cx + bw * 0.75) * s, (gy - hgt) * s), ((cx - bw * 0.75) * s, (gy - hgt) * s)],
                  fill=255)

    def roof(d, s, cx, gy, hgt, ang):
        bw = hgt * 0.2
        d.polygon([((cx - bw * 0.85) * s, (gy - hgt) * s), ((cx + bw * 0.85) * s, (gy - hgt) * s),
                   (cx * s, (gy - hgt * 1.3) * s)], fill=255)

    def sails(d, s, cx, gy, hgt, ang):
        hx, hy = cx, gy - hgt * 0.95
        for k in range(4):
            a = ang + k * np.pi / 2
            L = hgt * 0.95
            ex, ey = hx + np.cos(a) * L, hy + np.sin(a) * L
            d.line([(hx * s, hy * s), (ex * s, ey * s)], fill=255, width=int(5 * s))
            px, py = -np.sin(a), np.cos(a)
            q = [(hx + np.cos(a) * L * 0.3, hy + np.sin(a) * L * 0.3),
                 (ex, ey), (ex + px * hgt * 0.14, ey + py * hgt * 0.14),
                 (hx + np.cos(a) * L * 0.3 + px * hgt * 0.14, hy + np.sin(a) * L * 0.3 + py * hgt * 0.14)]
            for (ax, ay), (bx, by) in zip(q, q[1:] + q[:1]):
                d.line([(ax * s, ay * s), (bx * s, by * s)], fill=255, width=int(3 * s))
            for j in range(1, 6):
                t = 0.3 + 0.7 * j / 6
                ax, ay = hx + np.cos(a) * L * t, hy + np.sin(a) * L * t
                d.line([(ax * s, ay * s), ((ax + px * hgt * 0.14) * s, (ay + py * hgt * 0.14) * s)],
                       fill=255, width=int(2 * s))

    mills = []
    for mx, hgt in [(0.38, 230), (0.5, 270), (0.62, 250), (0.74, 200)]:
        cx = w * mx
        mills.append((cx, ridge2[int(cx)] + 20, hgt, rng.uniform(0, np.pi / 2)))
    body = shapes(h, w, lambda d, s: [windmill(d, s, *m) for m in mills])
    blend(img, body, hexc("#f7f4ec"))
    shade = shapes(h, w, lambda d, s: [d.rectangle([(m[0] + m[2] * 0.05) * s, (m[1] - m[2]) * s,
                                                      (m[0] + m[2] * 0.2) * s, m[1] * s], fill=255)
                                         for m in mills])
    blend(img, shade * body * 0.35, hexc("#9aa0b0"))
    blend(img, shapes(h, w, lambda d, s: [roof(d, s, *m) for m in mills]), hexc("#3a3a44"))
    blend(img, shapes(h, w, lambda d, s: [sails(d, s, *m) for m in mills]), hexc("#4a3a2a"))
    vignette(img, 0.22)
    return to_image(img)


def paris(rng, w=1600, h=2400):
    """A starry night over Paris and a golden iron tower (portrait)."""
    img = sky(h, w, [(0, "#05081c"), (0.45, "#101c48"), (0.75, "#2a3468"), (0.9, "#6a5a7a"), (1, "#a07a70")])
    y, x = grid(h, w)
    # milky way band
    band = np.exp(-((y - (h * 0.55 - x * 0.7)) / 260) ** 2)
    n = fbm2d(rng, h, w, octaves=7, base=4)
    blend(img, band * np.clip(0.35 + n, 0, 1) * 0.35, hexc("#b8b0e0"))
    stars(img, rng, 900, h * 0.8, size=1.2)
    glow(img, w * 0.2, h * 0.16, 90, "#fff6d8", 0.5)
    mx, my = w * 0.2, h * 0.16
    d1 = np.sqrt((x - mx) ** 2 + (y - my) ** 2)
    d2 = np.sqrt((x - mx - 18) ** 2 + (y - my + 10) ** 2)
    blend(img, np.clip((46 - d1) / 2, 0, 1) * np.clip((d2 - 42) / 2, 0, 1), hexc("#fff8e8"))
    base = int(h * 0.9)
    glow(img, w * 0.5, base, 700, "#ff9a50", 0.35)
    # roofs
    buildings(img, rng, base, -20, w, 60, 180, "#151428", lit=0.3, wmin=70, wmax=140,
              win=(7, 11), pitch=(18, 24))
    # tower
    cx, top = w * 0.55, h * 0.1
    hgt = base - top

    def half_width(t):  # t = 0 at the tip, 1 at the feet
        return 8 + 360 * t ** 2.6

    def tower(d, s):
        pts_l, pts_r = [], []
        for i in range(101):
            t = i / 100
            yy = top + t * hgt
            hw = half_width(t)
            pts_l.append(((cx - hw) * s, yy * s))
            pts_r.append(((cx + hw) * s, yy * s))
        d.polygon(pts_l + pts_r[::-1], fill=255)

    def holes(d, s):
        # the great arch between the feet and the windows in the legs
        t0 = 0.86
        ay = top + t0 * hgt
        hw = half_width(1) - 70
        d.pieslice([(cx - hw) * s, (ay) * s, (cx + hw) * s, (base + (base - ay)) * s], 180, 360, fill=255)
        d.rectangle([(cx - hw) * s, (ay + (base - ay)) * s, (cx + hw) * s, base * s], fill=255)
        for t1, t2 in [(0.3, 0.55), (0.6, 0.82)]:
            yy1, yy2 = top + t1 * hgt, top + t2 * hgt
            w1, w2 = half_width(t1) * 0.45, half_width(t2) * 0.45
            d.polygon([((cx - w1) * s, yy1 * s), ((cx + w1) * s, yy1 * s),
                       ((cx + w2) * s, yy2 * s), ((cx - w2) * s, yy2 * s)], fill=255)

    m = shapes(h, w, tower) * (1 - shapes(h, w, holes) * 0.85)
    t = np.clip((y - top) / hgt, 0, 1)
    col = gradient(t, [(0, "#ffe6a0"), (0.5, "#f0b050"), (1, "#c07828")])
    lattice = 0.82 + 0.18 * ((np.mod(y + x * 0.6, 26) < 4) | (np.mod(y - x * 0.6, 26) < 4))
    blend(img, m, col * lattice[..., None])
    # platforms
    for tp in (0.3, 0.6):
        yy = int(top + tp * hgt)
        hw = int(half_width(tp) + 14)
        img[yy - 10:yy + 8, int(cx - hw):int(cx + hw)] = hexc("#ffcf70")
    img[int(top - 60):int(top), int(cx - 3):int(cx + 3)] = hexc("#ffd890")
    glow(img, cx, top - 60, 30, "#fff0c0", 0.9)
    # the river of lights at the bottom
    img[base:] = hexc("#141024")
    reflect(img, base, rng, "#141024", mix=0.5, wave=4)
    vignette(img, 0.25)
    return to_image(img)


def tokyo(rng, w=2400, h=1600):
    """Tokyo by night: neon-tinted towers, a red lattice tower, the bay."""
    img = sky(h, w, [(0, "#0a0620"), (0.4, "#241040"), (0.65, "#5a2060"), (0.8, "#b04070"), (1, "#ff7a6a")])
    stars(img, rng, 150, h * 0.35, size=1.0)
    horizon = int(h * 0.74)
    glow(img, w * 0.5, horizon, 900, "#ff5a8a", 0.35)
    buildings(img, rng, horizon, -20, w, 160, 380, "#3a1f55", lit=0.08, wmin=50, wmax=120,
              lit_colors=("#9af0ff",))
    # the red tower (drawn between the two rows)
    cx, top = w * 0.7, horizon - 900

    def tw(d, s):
        for i in range(60):
            t0, t1 = i / 60, (i + 1) / 60
            y0, y1 = top + t0 * 900, top + t1 * 900
            w0, w1 = 6 + 150 * t0 ** 1.8, 6 + 150 * t1 ** 1.8
            d.polygon([((cx - w0) * s, y0 * s), ((cx + w0) * s, y0 * s),
                       ((cx + w1) * s, y1 * s), ((cx - w1) * s, y1 * s)], fill=255)

    m = shapes(h, w, tw)
    y, x = grid(h, w)
    bands = np.where(np.mod(((y - top) / 900 * 9).astype(int), 2) == 0, 1, 0)[..., None]
    col = np.where(bands, hexc("#ff4a2a"), hexc("#fff0e8"))
    lattice = 0.78 + 0.22 * ((np.mod(y + (x - cx), 30) < 5) | (np.mod(y - (x - cx), 30) < 5))
    blend(img, m, col * lattice[..., None])
    for tp in (0.45, 0.62):
        yy = int(top + tp * 900)
        hw = int(6 + 150 * tp ** 1.8 + 26)
        img[yy - 22:yy + 10, int(cx - hw):int(cx + hw)] = hexc("#ffe8d8")
        img[yy - 14:yy - 6, int(cx - hw + 6):int(cx + hw - 6)] = hexc("#ffb060")
    glow(img, cx, top, 40, "#ff6040", 0.9)
    buildings(img, rng, horizon, -40, w, 120, 420, "#120a22", lit=0.4, spires=2,
              lit_colors=("#ffe6b0", "#9af0ff", "#ff8ad0", "#fff2d0"))
    # neon signs
    for _ in range(26):
        nx, ny = int(rng.uniform(0, w - 40)), int(rng.uniform(horizon - 260, horizon - 40))
        c = ["#ff3ab0", "#3af0ff", "#ffe03a", "#7aff6a"][rng.integers(4)]
        vh = int(rng.uniform(50, 140))
        img[ny - vh:ny, nx:nx + 14] = hexc(c)
        glow(img[max(0, ny - vh - 40):ny + 40, max(0, nx - 40):nx + 54], 47, vh / 2 + 40, 30, c, 0.5)
    reflect(img, horizon, rng, "#120a26", mix=0.75, wave=9)
    vignette(img)
    return to_image(img)


def fuji(rng, w=2400, h=1600):
    """Mount Fuji at dawn over a still lake."""
    img = sky(h, w, [(0, "#5a6aa8"), (0.3, "#a08cc0"), (0.5, "#f0a8b0"), (0.62, "#ffc8a0"), (1, "#ffe0b0")])
    y, x = grid(h, w)
    n = fbm2d(rng, h, w, octaves=5, base=2)
    patches = np.clip(fbm2d(rng, h, w, 4, 2) * 3 + 0.2, 0, 1)
    blend(img, np.clip(np.sin(y / 30 + n * 5) - 0.7, 0, 1) * 2 * patches * np.clip(1 - y / (h * 0.4), 0, 1) * 0.45,
          hexc("#ffd0d8"))
    lake = int(h * 0.7)
    glow(img, w * 0.82, lake - 60, 300, "#fff0c8", 0.7)
    disc(img, w * 0.82, lake - 60, 55, "#fff6e0", soft=3)
    xs = np.arange(w, dtype=np.float32)
    cx = w * 0.45
    d = np.abs(xs - cx) / (w * 0.55)
    cone = (lake - 40) - 820 * np.clip(1 - d, 0, 1) ** 1.9
    cone = np.maximum(cone, lake - 40 - 820 * 0.92)  # flat summit
    cone += 6 * fbm1d(rng, w, 7, 8)
    layer(img, cone, "#5a5a98", "#7a78b0", depth=700)
    # snow cap with a ragged lower edge and a shaded side
    fingers = np.abs(fbm1d(rng, w, 6, 24))
    snow_line = (lake - 40 - 820 * 0.92) + 200 + 60 * fbm1d(rng, w, 5, 4) + 260 * fingers ** 1.3
    snow = ridge_mask(h, w, cone) * np.clip((snow_line[None, :] - y) / 3, 0, 1)
    col = np.where((x < cx)[..., None], hexc("#fff4f4"), hexc("#d8d0ec"))
    blend(img, snow, col)
    # forested foothills
    for base, amp, top, bot in [(lake - 110, 40, "#6a6a9a", "#5a5a8a"),
                                (lake - 50, 50, "#3a4a6a", "#2a3a58")]:
        ridge = base - amp * (fbm1d(rng, w, 7, 3) + 0.5)
        layer(img, ridge, top, bot)
    reflect(img, lake, rng, "#7a78b0", mix=0.65, wave=4)
    # pines on the near shore
    shore = h * 0.93 + 15 * fbm1d(rng, w, 4, 2)
    layer(img, shore, "#1f2a38", "#141c26")
    trees = shapes(h, w, lambda d, s: [pine(d, s, tx, shore[int(tx)] + 10, rng.uniform(180, 380))
                                       for tx in list(rng.uniform(0, w * 0.2, 8)) + list(rng.uniform(w * 0.9, w - 1, 4))])
    blend(img, trees, hexc("#141c26"))
    vignette(img)
    return to_image(img)


# --------------------------------------------------------------------------
# the set
# --------------------------------------------------------------------------

# (file, scene, how it is saved, taken_at in UTC, caption)
PHOTOS = [
    ("01-new-york.jpg", new_york, "jpeg", "2026-02-14T22:20:00Z", "New York, Manhattan at dusk"),
    ("02-central-park.jpg", central_park_snow, "jpeg-gray", "2026-02-16T15:05:00Z", "Snow in Central Park"),
    ("03-lisbon.jpg", lisbon, "jpeg", "2026-05-02T19:40:00Z", "Lisbon, sunset over the Tejo from Praça do Comércio"),
    ("04-porto.jpg", porto, "jpeg", "2026-05-06T20:35:00Z", "Porto, the Douro at blue hour"),
    ("05-rio-de-janeiro.jpg", rio, "jpeg-orient6", "2026-07-11T18:10:00Z", "Rio de Janeiro, Sugar Loaf"),
    ("06-copacabana.png", copacabana_stamp, "png-alpha", "2026-07-12T20:30:00Z", "Copacabana at sunset"),
    ("07-buenos-aires.jpg", buenos_aires, "jpeg", "2026-09-05T21:40:00Z", "Buenos Aires, the Obelisk"),
    ("08-pampas.webp", pampas, "webp", "2026-09-07T15:15:00Z", "The pampas outside Buenos Aires"),
    ("09-madrid.jpg", la_mancha, "jpeg-cmyk", "2026-10-11T14:00:00Z", "Windmills of La Mancha, south of Madrid"),
    ("10-paris.jpg", paris, "jpeg", "2026-10-15T20:50:00Z", "Paris by night"),
    ("11-tokyo.jpg", tokyo, "jpeg", "2026-12-05T11:30:00Z", "Tokyo by night"),
    ("12-mount-fuji.jpg", fuji, "jpeg", "2026-12-07T22:10:00Z", "Mount Fuji at dawn"),
]

CONTENT_TYPES = {"jpeg": "image/jpeg", "jpeg-gray": "image/jpeg", "jpeg-orient6": "image/jpeg",
                 "jpeg-cmyk": "image/jpeg", "png-alpha": "image/png", "webp": "image/webp"}


def save(im, kind, path):
    if kind in ("jpeg", "jpeg-gray"):
        im.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif kind == "jpeg-orient6":
        # EXIF Orientation 6 = "rotate 90 degrees clockwise to display". So the
        # stored pixels are the upright picture turned 90 degrees counter-
        # clockwise: a reader that ignores the tag shows it lying on its side
        # (sun on the left, beach on the right).
        stored = im.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6
        stored.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True, exif=exif.tobytes())
    elif kind == "jpeg-cmyk":
        convert = shutil.which("convert")
        if convert is None:
            sys.exit("ImageMagick's convert is needed for the CMYK file")
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "rgb.png")
            im.save(src)
            subprocess.run([convert, src, "-colorspace", "CMYK", "-quality", str(JPEG_QUALITY),
                            "-strip", path], check=True)
    elif kind == "png-alpha":
        im.save(path, "PNG", optimize=True)
    elif kind == "webp":
        im.save(path, "WEBP", quality=80, method=6)
    else:
        raise ValueError(kind)


def main():
    only = set(sys.argv[1:])
    meta = []
    for i, (name, scene, kind, taken_at, caption) in enumerate(PHOTOS):
        meta.append({"file": name, "content_type": CONTENT_TYPES[kind],
                     "taken_at": taken_at, "caption": caption})
        if only and name not in only:
            continue
        rng = np.random.default_rng([SEED, i])
        im = scene(rng)
        path = os.path.join(HERE, name)
        save(im, kind, path)
        print(f"{name:28} {im.size[0]}x{im.size[1]} {kind:13} {os.path.getsize(path) // 1024} KiB")
    with open(os.path.join(HERE, "photos.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
