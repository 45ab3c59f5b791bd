//! A PDF invoice of random purchase lines (default 500; the parameter sets the count), 50 lines a
//! page, each page with one random 814x613 JPEG image, built in memory.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, RgbImage};
use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream};
use rand::{Rng, RngCore};
use wasabi_guests::{alphanumeric, fail, report, rng, size};

const LINES_PER_PAGE: u64 = 50;
const IMAGE_WIDTH: u32 = 814;
const IMAGE_HEIGHT: u32 = 613;
/// A4 in points.
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;

fn main() {
    let lines = size(500);
    let mut rng = rng();
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });

    let mut page_ids = Vec::new();
    let mut total_cents: u64 = 0;
    let mut image_bytes = 0usize;
    let mut line = 0u64;
    while line < lines {
        let on_page = LINES_PER_PAGE.min(lines - line);
        let jpeg = random_jpeg(&mut rng);
        image_bytes += jpeg.len();
        let image_id = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => IMAGE_WIDTH as i64,
                "Height" => IMAGE_HEIGHT as i64,
                "ColorSpace" => "DeviceRGB",
                "BitsPerComponent" => 8,
                "Filter" => "DCTDecode",
            },
            jpeg,
        ));

        // The image across the top third of the page, then the lines below it.
        let shown_width = PAGE_WIDTH - 100.0;
        let shown_height = shown_width * IMAGE_HEIGHT as f32 / IMAGE_WIDTH as f32;
        let mut ops = vec![
            Operation::new("q", vec![]),
            Operation::new(
                "cm",
                vec![
                    shown_width.into(),
                    0.into(),
                    0.into(),
                    shown_height.into(),
                    50.into(),
                    (PAGE_HEIGHT - 40.0 - shown_height).into(),
                ],
            ),
            Operation::new("Do", vec!["Im1".into()]),
            Operation::new("Q", vec![]),
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 8.into()]),
            Operation::new("TL", vec![9.5.into()]),
            Operation::new("Td", vec![50.into(), (PAGE_HEIGHT - 60.0 - shown_height).into()]),
        ];
        for _ in 0..on_page {
            line += 1;
            let quantity = rng.gen_range(1..=20u64);
            let price_cents = rng.gen_range(100..=50_000u64);
            let amount = quantity * price_cents;
            total_cents += amount;
            let text = format!(
                "{line:>4}  {}  {quantity:>2} x {:>8}  = {:>10}",
                alphanumeric(&mut rng, 24),
                money(price_cents),
                money(amount)
            );
            ops.push(Operation::new("Tj", vec![Object::string_literal(text)]));
            ops.push(Operation::new("T*", vec![]));
        }
        if line == lines {
            let total = format!("Total due: {}", money(total_cents));
            ops.push(Operation::new("Tj", vec![Object::string_literal(total)]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops }
            .encode()
            .unwrap_or_else(|e| fail(&format!("encoding the page content: {e}")));
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        page_ids.push(doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => dictionary! {
                "Font" => dictionary! { "F1" => font_id },
                "XObject" => dictionary! { "Im1" => image_id },
            },
        }));
    }

    let pages = page_ids.len();
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => page_ids.into_iter().map(Object::Reference).collect::<Vec<_>>(),
            "Count" => pages as i64,
            "MediaBox" => vec![0.into(), 0.into(), PAGE_WIDTH.into(), PAGE_HEIGHT.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut pdf = Vec::new();
    doc.save_to(&mut pdf).unwrap_or_else(|e| fail(&format!("writing the PDF: {e}")));

    report(&format!(
        "GENPDF Executed: invoice of {lines} lines on {pages} pages with {pages} JPEG images \
         ({image_bytes} bytes), PDF {} bytes, total {}",
        pdf.len(),
        money(total_cents)
    ));
}

/// A random 814x613 picture as JPEG (quality 80).
fn random_jpeg(rng: &mut impl RngCore) -> Vec<u8> {
    let mut pixels = vec![0u8; IMAGE_WIDTH as usize * IMAGE_HEIGHT as usize * 3];
    rng.fill_bytes(&mut pixels);
    let Some(image) = RgbImage::from_raw(IMAGE_WIDTH, IMAGE_HEIGHT, pixels) else { fail("image buffer size") };
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 80))
        .unwrap_or_else(|e| fail(&format!("encoding the JPEG: {e}")));
    out.into_inner()
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}
