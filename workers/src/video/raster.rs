//! Frames as planar YUV 4:2:0 (BT.709, limited range), and the few things a
//! film does to them: convert a photo once, sample it through a moving
//! window with sub-pixel precision (the Ken Burns move), blend two frames
//! (the crossfade), and lay text over them.
//!
//! All of it is integer arithmetic on 8-bit samples with 8-bit weights:
//! exact, the same on every machine, and fast enough that the encoder, not
//! the drawing, sets the pace.

use image::RgbImage;

/// One plane, rows packed without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Plane {
    pub fn filled(width: usize, height: usize, value: u8) -> Plane {
        Plane { width, height, data: vec![value; width * height] }
    }

    pub fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.width..(y + 1) * self.width]
    }
}

/// A YUV 4:2:0 image: luma at full size, chroma at half in each direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Yuv {
    pub y: Plane,
    pub u: Plane,
    pub v: Plane,
}

/// A colour in limited-range BT.709 YUV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvColor {
    pub y: u8,
    pub u: u8,
    pub v: u8,
}

impl YuvColor {
    pub const BLACK: YuvColor = YuvColor { y: 16, u: 128, v: 128 };
    pub const WHITE: YuvColor = YuvColor { y: 235, u: 128, v: 128 };

    /// BT.709 with limited range (Y 16–235, Cb/Cr 16–240), from sRGB-coded
    /// 8-bit RGB, in 16-bit fixed point.
    pub fn from_rgb(r: u8, g: u8, b: u8) -> YuvColor {
        let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
        // Coefficients × 65536: Kr = 0.2126, Kb = 0.0722, scaled by 219/255
        // for luma and 224/255 for chroma.
        let y = (11966 * r + 40254 * g + 4064 * b + (16 << 16) + 32768) >> 16;
        let u = (-6596 * r - 22189 * g + 28785 * b + (128 << 16) + 32768) >> 16;
        let v = (28785 * r - 26145 * g - 2640 * b + (128 << 16) + 32768) >> 16;
        YuvColor { y: clamp_u8(y), u: clamp_u8(u), v: clamp_u8(v) }
    }

    /// Back to sRGB-coded RGB (for the thumbnail).
    pub fn to_rgb(self) -> [u8; 3] {
        let y = (i32::from(self.y) - 16) * 76309; // 255/219 × 65536
        let u = i32::from(self.u) - 128;
        let v = i32::from(self.v) - 128;
        // 1.5748, 0.1873, 0.4681, 1.8556 scaled by 255/224 × 65536.
        let r = (y + 117489 * v + 32768) >> 16;
        let g = (y - 13975 * u - 34925 * v + 32768) >> 16;
        let b = (y + 138438 * u + 32768) >> 16;
        [clamp_u8(r), clamp_u8(g), clamp_u8(b)]
    }
}

fn clamp_u8(value: i32) -> u8 {
    value.clamp(0, 255) as u8
}

impl Yuv {
    /// A frame of one colour. `width` and `height` must be even.
    pub fn filled(width: usize, height: usize, color: YuvColor) -> Yuv {
        Yuv {
            y: Plane::filled(width, height, color.y),
            u: Plane::filled(width / 2, height / 2, color.u),
            v: Plane::filled(width / 2, height / 2, color.v),
        }
    }

    pub fn width(&self) -> usize {
        self.y.width
    }

    pub fn height(&self) -> usize {
        self.y.height
    }

    /// Converts an RGB image whose sides are even. Chroma is the average of
    /// each 2×2 block's.
    pub fn from_rgb(rgb: &RgbImage) -> Yuv {
        let (width, height) = (rgb.width() as usize & !1, rgb.height() as usize & !1);
        let mut out = Yuv::filled(width, height, YuvColor::BLACK);
        let raw = rgb.as_raw();
        let stride = rgb.width() as usize * 3;
        for cy in 0..height / 2 {
            for cx in 0..width / 2 {
                let (mut u, mut v) = (0u32, 0u32);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let (x, y) = (cx * 2 + dx, cy * 2 + dy);
                    let p = y * stride + x * 3;
                    let color = YuvColor::from_rgb(raw[p], raw[p + 1], raw[p + 2]);
                    out.y.data[y * width + x] = color.y;
                    u += u32::from(color.u);
                    v += u32::from(color.v);
                }
                out.u.data[cy * (width / 2) + cx] = ((u + 2) / 4) as u8;
                out.v.data[cy * (width / 2) + cx] = ((v + 2) / 4) as u8;
            }
        }
        out
    }

    /// Converts to RGB at half size (one pixel per chroma sample): enough
    /// for a thumbnail, and cheap.
    pub fn to_rgb_half(&self) -> RgbImage {
        let (width, height) = (self.u.width, self.u.height);
        let mut out = RgbImage::new(width as u32, height as u32);
        for (i, pixel) in out.pixels_mut().enumerate() {
            let (cx, cy) = (i % width, i / width);
            let y = self.y.row(cy * 2);
            let y2 = self.y.row(cy * 2 + 1);
            let luma = (u32::from(y[cx * 2])
                + u32::from(y[cx * 2 + 1])
                + u32::from(y2[cx * 2])
                + u32::from(y2[cx * 2 + 1])
                + 2)
                / 4;
            let color = YuvColor { y: luma as u8, u: self.u.data[i], v: self.v.data[i] };
            pixel.0 = color.to_rgb();
        }
        out
    }
}

/// Where the window of a Ken Burns move is at one instant, in the luma
/// coordinates of the source: its centre, and the source pixels per output
/// pixel (1.0 samples one to one; above 1.0 shows more of the photo).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub cx: f64,
    pub cy: f64,
    pub scale: f64,
}

/// Reused per-column lookups, so that sampling allocates nothing per frame.
#[derive(Debug, Default)]
pub struct Sampler {
    columns: Vec<(u32, u16)>,
}

/// Sub-pixel weights have 8 bits: 1/256 of a pixel, well under what an eye
/// can see move between two frames, so a slow pan glides instead of
/// stepping a whole pixel at a time.
const FRACTION_BITS: u32 = 8;
const ONE: u32 = 1 << FRACTION_BITS;

impl Sampler {
    /// Fills `dst` with the part of `src` that `view` frames, bilinearly.
    pub fn sample(&mut self, src: &Yuv, view: View, dst: &mut Yuv) {
        let (w, h) = (dst.width() as f64, dst.height() as f64);
        let left = view.cx - w * view.scale / 2.0;
        let top = view.cy - h * view.scale / 2.0;
        self.plane(&src.y, left, top, view.scale, &mut dst.y);
        // Chroma sits at half resolution: the same window, halved.
        self.plane(&src.u, left / 2.0, top / 2.0, view.scale, &mut dst.u);
        self.plane(&src.v, left / 2.0, top / 2.0, view.scale, &mut dst.v);
    }

    fn plane(&mut self, src: &Plane, left: f64, top: f64, scale: f64, dst: &mut Plane) {
        let max_x = src.width.saturating_sub(1) as f64;
        let max_y = src.height.saturating_sub(1) as f64;
        self.columns.clear();
        self.columns.extend((0..dst.width).map(|x| {
            // Pixel centres map to pixel centres.
            let sx = (left + (x as f64 + 0.5) * scale - 0.5).clamp(0.0, max_x);
            split(sx)
        }));
        let last_column = src.width.saturating_sub(1);
        for (y, out) in dst.data.chunks_exact_mut(dst.width).enumerate() {
            let sy = (top + (y as f64 + 0.5) * scale - 0.5).clamp(0.0, max_y);
            let (iy, fy) = split(sy);
            let row0 = src.row(iy as usize);
            let row1 = src.row((iy as usize + 1).min(src.height - 1));
            let fy = u32::from(fy);
            for (pixel, &(ix, fx)) in out.iter_mut().zip(&self.columns) {
                let ix = ix as usize;
                let ix1 = (ix + 1).min(last_column);
                let fx = u32::from(fx);
                let top = u32::from(row0[ix]) * (ONE - fx) + u32::from(row0[ix1]) * fx;
                let bottom = u32::from(row1[ix]) * (ONE - fx) + u32::from(row1[ix1]) * fx;
                *pixel =
                    ((top * (ONE - fy) + bottom * fy + (1 << (2 * FRACTION_BITS - 1))) >> (2 * FRACTION_BITS)) as u8;
            }
        }
    }
}

/// A coordinate as its whole pixel and its 8-bit fraction.
fn split(position: f64) -> (u32, u16) {
    let fixed = (position * f64::from(ONE)).round() as u32;
    (fixed >> FRACTION_BITS, (fixed & (ONE - 1)) as u16)
}

/// Blends `incoming` into `frame` with `weight` of 256 (0 keeps `frame`,
/// 256 would be all `incoming`), plane by plane, in YUV.
pub fn crossfade(frame: &mut Yuv, incoming: &Yuv, weight: u16) {
    let w = u32::from(weight.min(256));
    for (out, other) in [(&mut frame.y, &incoming.y), (&mut frame.u, &incoming.u), (&mut frame.v, &incoming.v)] {
        for (a, &b) in out.data.iter_mut().zip(&other.data) {
            *a = ((u32::from(*a) * (256 - w) + u32::from(b) * w + 128) >> 8) as u8;
        }
    }
}

/// An alpha mask (255 opaque) at luma resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Mask {
    pub fn new(width: usize, height: usize) -> Mask {
        Mask { width, height, data: vec![0; width * height] }
    }

    /// Raises coverage at (x, y) to `alpha`; never lowers it.
    pub fn cover(&mut self, x: i64, y: i64, alpha: u8) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let cell = &mut self.data[y as usize * self.width + x as usize];
        *cell = (*cell).max(alpha);
    }

    /// The same mask moved by (dx, dy) and scaled by `strength`/255: a hard
    /// drop shadow.
    pub fn shadow(&self, dx: usize, dy: usize, strength: u8) -> Mask {
        let mut out = Mask::new(self.width, self.height);
        for y in 0..self.height.saturating_sub(dy) {
            for x in 0..self.width.saturating_sub(dx) {
                let a = self.data[y * self.width + x];
                out.data[(y + dy) * self.width + x + dx] = ((u32::from(a) * u32::from(strength) + 127) / 255) as u8;
            }
        }
        out
    }

    fn halved(&self) -> Vec<u8> {
        let (w, h) = (self.width / 2, self.height / 2);
        let mut out = vec![0; w * h];
        for y in 0..h {
            for x in 0..w {
                let at = |dx: usize, dy: usize| u32::from(self.data[(y * 2 + dy) * self.width + x * 2 + dx]);
                out[y * w + x] = ((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) / 4) as u8;
            }
        }
        out
    }
}

/// One colour painted through one mask.
#[derive(Debug, Clone)]
struct Layer {
    color: YuvColor,
    luma: Vec<u8>,
    chroma: Vec<u8>,
}

/// Text and shading prepared once (per photo, per card) and painted onto
/// many frames: a rectangle at (`x`, `y`) of the frame, with layers painted
/// in order. Only the rectangle's pixels are touched.
#[derive(Debug, Clone)]
pub struct Overlay {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
    layers: Vec<Layer>,
}

impl Overlay {
    /// An empty overlay over the rectangle; `x`, `y`, `width` and `height`
    /// are rounded down to even numbers to line up with chroma.
    pub fn new(x: usize, y: usize, width: usize, height: usize) -> Overlay {
        Overlay { x: x & !1, y: y & !1, width: width & !1, height: height & !1, layers: Vec::new() }
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Adds a layer: `mask` must be the overlay's size.
    pub fn paint(&mut self, mask: &Mask, color: YuvColor) {
        debug_assert_eq!((mask.width, mask.height), (self.width, self.height));
        self.layers.push(Layer { color, luma: mask.data.clone(), chroma: mask.halved() });
    }

    /// Paints the layers onto `frame`, clipped to it.
    pub fn apply(&self, frame: &mut Yuv) {
        for layer in &self.layers {
            blend_region(&mut frame.y, self.x, self.y, self.width, self.height, &layer.luma, layer.color.y);
            let (cx, cy, cw, ch) = (self.x / 2, self.y / 2, self.width / 2, self.height / 2);
            blend_region(&mut frame.u, cx, cy, cw, ch, &layer.chroma, layer.color.u);
            blend_region(&mut frame.v, cx, cy, cw, ch, &layer.chroma, layer.color.v);
        }
    }
}

fn blend_region(plane: &mut Plane, x: usize, y: usize, width: usize, height: usize, alpha: &[u8], value: u8) {
    let value = u32::from(value);
    for row in 0..height {
        let py = y + row;
        if py >= plane.height {
            break;
        }
        let span = width.min(plane.width.saturating_sub(x));
        let out = &mut plane.data[py * plane.width + x..py * plane.width + x + span];
        let alphas = &alpha[row * width..row * width + span];
        for (p, &a) in out.iter_mut().zip(alphas) {
            if a != 0 {
                let a = u32::from(a);
                *p = ((u32::from(*p) * (255 - a) + value * a + 127) / 255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_survive_the_round_trip() {
        for rgb in [[0, 0, 0], [255, 255, 255], [200, 30, 90], [12, 180, 240], [128, 128, 128]] {
            let back = YuvColor::from_rgb(rgb[0], rgb[1], rgb[2]).to_rgb();
            for c in 0..3 {
                assert!((i32::from(back[c]) - i32::from(rgb[c])).abs() <= 2, "{rgb:?} came back as {back:?}");
            }
        }
        assert_eq!(YuvColor::from_rgb(0, 0, 0), YuvColor::BLACK);
        assert_eq!(YuvColor::from_rgb(255, 255, 255), YuvColor::WHITE);
    }

    fn gradient(width: usize, height: usize) -> Yuv {
        let mut frame = Yuv::filled(width, height, YuvColor::BLACK);
        for (i, p) in frame.y.data.iter_mut().enumerate() {
            *p = ((i % width) * 2 + 16) as u8;
        }
        frame
    }

    #[test]
    fn one_to_one_sampling_copies_the_source() {
        let src = gradient(64, 32);
        let mut dst = Yuv::filled(64, 32, YuvColor::WHITE);
        Sampler::default().sample(&src, View { cx: 32.0, cy: 16.0, scale: 1.0 }, &mut dst);
        assert_eq!(dst, src);
    }

    #[test]
    fn half_a_pixel_moves_by_half_a_step() {
        // The source rises by 2 per pixel: a window moved right by 0.5 px
        // reads values exactly 1 higher, where a
        // whole-pixel sampler would not have moved at all.
        let src = gradient(64, 8);
        let mut sampler = Sampler::default();
        let mut still = Yuv::filled(32, 8, YuvColor::BLACK);
        let mut moved = still.clone();
        sampler.sample(&src, View { cx: 32.0, cy: 4.0, scale: 1.0 }, &mut still);
        sampler.sample(&src, View { cx: 32.5, cy: 4.0, scale: 1.0 }, &mut moved);
        let step: Vec<i32> =
            still.y.row(0).iter().zip(moved.y.row(0)).map(|(a, b)| i32::from(*b) - i32::from(*a)).collect();
        assert!(step.iter().all(|&d| d == 1), "half a pixel on a slope of 2 is +1: {step:?}");
    }

    #[test]
    fn crossfades_go_from_one_frame_to_the_other() {
        let mut a = Yuv::filled(4, 4, YuvColor::BLACK);
        let b = Yuv::filled(4, 4, YuvColor::WHITE);
        crossfade(&mut a, &b, 128);
        assert_eq!(a.y.data[0], ((16 + 235) as f64 / 2.0).round() as u8);
        let mut c = Yuv::filled(4, 4, YuvColor::BLACK);
        crossfade(&mut c, &b, 0);
        assert_eq!(c, Yuv::filled(4, 4, YuvColor::BLACK));
    }

    #[test]
    fn overlays_paint_only_their_rectangle() {
        let mut frame = Yuv::filled(16, 16, YuvColor::BLACK);
        let mut overlay = Overlay::new(4, 4, 8, 8);
        let mut mask = Mask::new(8, 8);
        mask.data.fill(255);
        overlay.paint(&mask, YuvColor::WHITE);
        overlay.apply(&mut frame);
        assert_eq!(frame.y.data[5 * 16 + 5], 235);
        assert_eq!(frame.y.data[0], 16);
        assert_eq!(frame.y.data[13 * 16 + 13], 16);
        // Clipped at the frame's edge, not a panic.
        let mut edge = Overlay::new(12, 12, 8, 8);
        edge.paint(&mask, YuvColor::WHITE);
        edge.apply(&mut frame);
        assert_eq!(frame.y.data[15 * 16 + 15], 235);
    }
}
