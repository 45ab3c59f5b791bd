//! A Gaussian blur (sigma 10) of a random square RGB image (default 1000 pixels a side; the
//! parameter sets the side), which arrives as base64 JPEG and leaves as base64 JPEG.

use std::io::Cursor;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, RgbImage};
use rand::RngCore;
use wasabi_guests::{fail, report, rng, size};

const SIGMA: f32 = 10.0;
const JPEG_QUALITY: u8 = 80;

fn main() {
    let side = u32::try_from(size(1000)).unwrap_or_else(|_| fail("the image side must fit in 32 bits"));
    let mut pixels = vec![0u8; side as usize * side as usize * 3];
    rng().fill_bytes(&mut pixels);
    let Some(image) = RgbImage::from_raw(side, side, pixels) else { fail("image buffer size") };

    // The request's input: the image as base64 JPEG.
    let input = STANDARD.encode(jpeg(&DynamicImage::ImageRgb8(image)));

    let bytes = STANDARD.decode(&input).unwrap_or_else(|e| fail(&format!("base64: {e}")));
    let decoded = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg)
        .unwrap_or_else(|e| fail(&format!("decoding the JPEG: {e}")));
    let blurred = DynamicImage::ImageRgb8(image::imageops::blur(&decoded.to_rgb8(), SIGMA));
    let output = STANDARD.encode(jpeg(&blurred));

    report(&format!(
        "IMAGEBLUR Executed: {side}x{side} image blurred (sigma {SIGMA}), JPEG base64 in {} bytes, out {} bytes",
        input.len(),
        output.len()
    ));
}

fn jpeg(image: &DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))
        .unwrap_or_else(|e| fail(&format!("encoding the JPEG: {e}")));
    out.into_inner()
}
