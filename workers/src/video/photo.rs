//! One photo, from its bytes to the frame-sized YUV image that its Ken Burns
//! move samples: decoded once, turned upright (EXIF orientation), flattened
//! (alpha over a dark background; CMYK and grayscale as RGB), cropped to
//! cover the film's frame with room to move, and scaled once.

use std::io::Cursor;

use fast_image_resize::{images::Image as FirImage, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{metadata::Orientation, DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use super::raster::Yuv;

/// Photos over the media API's limit are refused before they are decoded
/// (an upload to S3 may not have been checked yet): at 100 megapixels, the
/// RGB image alone would be 300 MB.
use longhaul_jobs::media::MAX_PIXELS;

/// What fully transparent pixels become: the cards' dark blue.
const BACKGROUND: [u8; 3] = [18, 24, 38];

/// Why a photo cannot be used. The message is shown to the user, in the
/// job's result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

/// Decodes `bytes` and prepares it for a frame of `width`×`height` with room
/// for a `zoom` (1.2 lets the window shrink to 1/1.2 of the photo).
pub fn prepare(bytes: &[u8], width: u32, height: u32, zoom: f64) -> Result<Yuv, Unusable> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|err| Unusable(format!("cannot read it: {err}")))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) => {}
        Some(other) => return Err(Unusable(format!("{other:?} images are not supported; use JPEG, PNG or WebP"))),
        None => return Err(Unusable("not an image (JPEG, PNG or WebP)".to_owned())),
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills in what is missing with gray.
        return Err(Unusable(
            "corrupt image: the JPEG is truncated (no end-of-image marker after its data)".to_owned(),
        ));
    }
    let mut decoder = reader.into_decoder().map_err(|err| Unusable(format!("corrupt image: {err}")))?;
    let (raw_w, raw_h) = decoder.dimensions();
    let pixels = u64::from(raw_w) * u64::from(raw_h);
    if pixels > MAX_PIXELS {
        return Err(Unusable(format!(
            "{raw_w}×{raw_h} is {:.0} megapixels, over the limit of {} megapixels",
            pixels as f64 / 1e6,
            MAX_PIXELS / 1_000_000
        )));
    }
    if raw_w < 2 || raw_h < 2 {
        return Err(Unusable(format!("{raw_w}×{raw_h} is too small to show")));
    }
    // A broken EXIF block is not worth losing the photo over: show it as
    // stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(|err| Unusable(format!("corrupt image: {err}")))?;
    let rgb = flatten(image)?;

    // Scale the photo as stored, then turn the small result upright: the
    // full-size photo is never copied.
    let target_w = (f64::from(width) * zoom).ceil() as u32 & !1;
    let target_h = (f64::from(height) * zoom).ceil() as u32 & !1;
    let sideways = matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    );
    let (stored_w, stored_h) = if sideways { (target_h, target_w) } else { (target_w, target_h) };
    let scaled = cover(rgb, stored_w, stored_h)?;
    let mut upright = DynamicImage::ImageRgb8(scaled);
    upright.apply_orientation(orientation);
    Ok(Yuv::from_rgb(&upright.into_rgb8()))
}

/// Whether a JPEG reaches its end-of-image marker: its segments are walked
/// by their lengths from the start (so an EXIF thumbnail's markers are
/// stepped over), and each scan's coded data up to the next real marker (an
/// `FF` in coded data is followed by `00` or a restart marker). Anything
/// after the end-of-image marker (a motion photo's video, a vendor trailer)
/// is ignored.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let n = bytes.len();
    let mut i = 2;
    while i + 1 < n {
        if bytes[i] != 0xFF {
            // Stray bytes between segments: step over them.
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            0xD9 => return true,
            // Fill bytes, restart markers, and markers without a length.
            0xFF => i += 1,
            0x00 | 0x01 | 0xD0..=0xD8 => i += 2,
            marker => {
                if i + 3 >= n {
                    return false;
                }
                let length = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
                let end = i + 2 + length;
                if length < 2 || end > n {
                    return false;
                }
                i = end;
                if marker == 0xDA {
                    // The scan's coded data runs to the next real marker.
                    loop {
                        if i + 1 >= n {
                            return false;
                        }
                        if bytes[i] == 0xFF && !matches!(bytes[i + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

/// RGB8 whatever came in: alpha is composited over the background; gray,
/// 16-bit and float images are converted.
fn flatten(image: DynamicImage) -> Result<RgbImage, Unusable> {
    if !image.color().has_alpha() {
        return Ok(image.into_rgb8());
    }
    // Composited in place: each RGBA pixel becomes an RGB one at or before
    // its own position, so one buffer does.
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut data = rgba.into_raw();
    let pixels = data.len() / 4;
    for i in 0..pixels {
        let a = u32::from(data[4 * i + 3]);
        let rgb = [data[4 * i], data[4 * i + 1], data[4 * i + 2]];
        for ((value, background), c) in rgb.into_iter().zip(BACKGROUND).zip(0..) {
            data[3 * i + c] = ((u32::from(value) * a + u32::from(background) * (255 - a) + 127) / 255) as u8;
        }
    }
    data.truncate(pixels * 3);
    data.shrink_to_fit();
    RgbImage::from_raw(w, h, data).ok_or_else(|| Unusable("cannot flatten its transparency".to_owned()))
}

/// Crops the centre of `rgb` to the aspect of `width`×`height` and scales it
/// to exactly that size.
fn cover(rgb: RgbImage, width: u32, height: u32) -> Result<RgbImage, Unusable> {
    let (w, h) = rgb.dimensions();
    let scale = (f64::from(width) / f64::from(w)).max(f64::from(height) / f64::from(h));
    let crop_w = f64::from(width) / scale;
    let crop_h = f64::from(height) / scale;
    let left = (f64::from(w) - crop_w) / 2.0;
    let top = (f64::from(h) - crop_h) / 2.0;
    let src = FirImage::from_vec_u8(w, h, rgb.into_raw(), PixelType::U8x3)
        .map_err(|err| Unusable(format!("cannot scale it: {err}")))?;
    let mut dst = FirImage::new(width, height, PixelType::U8x3);
    let options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom)).crop(left, top, crop_w, crop_h);
    Resizer::new().resize(&src, &mut dst, &options).map_err(|err| Unusable(format!("cannot scale it: {err}")))?;
    RgbImage::from_raw(width, height, dst.into_vec()).ok_or_else(|| Unusable("cannot scale it".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgba};

    fn png(image: DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_photo_is_cropped_to_cover_the_frame_with_room_to_move() {
        let wide = DynamicImage::ImageRgb8(RgbImage::from_pixel(400, 300, image::Rgb([200, 40, 40])));
        let yuv = prepare(&png(wide), 108, 192, 1.2).unwrap();
        assert_eq!((yuv.width(), yuv.height()), (130, 230));
    }

    #[test]
    fn transparent_pixels_become_the_background() {
        let clear = ImageBuffer::from_pixel(64, 64, Rgba([255u8, 255, 255, 0]));
        let yuv = prepare(&png(DynamicImage::ImageRgba8(clear)), 32, 32, 1.0).unwrap();
        let expected = super::super::raster::YuvColor::from_rgb(BACKGROUND[0], BACKGROUND[1], BACKGROUND[2]);
        assert!(yuv.y.data.iter().all(|&y| (i32::from(y) - i32::from(expected.y)).abs() <= 1));
    }

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/photos").join(name)).unwrap()
    }

    fn mean_difference(a: &Yuv, b: &Yuv) -> f64 {
        let total: u64 = a.y.data.iter().zip(&b.y.data).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
        total as f64 / a.y.data.len() as f64
    }

    #[test]
    fn exif_orientation_is_honoured() {
        // 05 is stored on its side with Orientation 6 ("rotate 90° clockwise
        // to show"): prepared, it must match the stored pixels turned by hand.
        let bytes = sample("05-rio-de-janeiro.jpg");
        let stored = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).unwrap();
        assert!(stored.width() > stored.height(), "stored sideways");
        let turned = png(stored.rotate90());
        let from_exif = prepare(&bytes, 108, 192, 1.2).unwrap();
        let by_hand = prepare(&turned, 108, 192, 1.2).unwrap();
        let unturned = prepare(&png(stored), 108, 192, 1.2).unwrap();
        assert!(mean_difference(&from_exif, &by_hand) < 2.0);
        assert!(mean_difference(&from_exif, &unturned) > 10.0, "the tag made a difference");
    }

    #[test]
    fn cmyk_gray_and_webp_photos_decode_in_colour_order() {
        for name in ["09-madrid.jpg", "02-central-park.jpg", "08-pampas.webp"] {
            let yuv = prepare(&sample(name), 192, 108, 1.2).unwrap();
            let mean = yuv.y.data.iter().map(|&y| f64::from(y)).sum::<f64>() / yuv.y.data.len() as f64;
            assert!((20.0..235.0).contains(&mean), "{name}: mean luma {mean}");
        }
        // Grayscale has no colour: chroma stays at the neutral 128.
        let gray = prepare(&sample("02-central-park.jpg"), 192, 108, 1.2).unwrap();
        assert!(gray.u.data.iter().chain(&gray.v.data).all(|&c| c.abs_diff(128) <= 1));
    }

    #[test]
    fn bad_bytes_are_refused_with_a_reason() {
        assert!(prepare(b"hello, world", 32, 32, 1.0).unwrap_err().0.contains("not an image"));
        let mut jpeg = sample("03-lisbon.jpg");
        assert!(prepare(&jpeg, 32, 32, 1.0).is_ok());
        // A trailer after the end (a motion photo's video) is not damage,
        // even when it holds bytes that look like JPEG markers.
        let mut trailed = jpeg.clone();
        trailed.extend([0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 0xFF, 0xD8]);
        assert!(prepare(&trailed, 32, 32, 1.0).is_ok());
        jpeg.truncate(jpeg.len() * 2 / 3);
        assert!(prepare(&jpeg, 32, 32, 1.0).unwrap_err().0.contains("truncated"));
        let mut truncated = png(DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 300, image::Rgb([1, 2, 3]))));
        truncated.truncate(truncated.len() / 2);
        assert!(prepare(&truncated, 32, 32, 1.0).unwrap_err().0.contains("corrupt"));
    }
}
