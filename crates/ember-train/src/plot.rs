//! A loss-curve PNG with no dependencies: a small raster canvas, a 5×7 bitmap font for the
//! labels, and an uncompressed (stored-deflate) PNG encoder.

use std::path::Path;

use ember_core::Result;
use ember_weights::write_atomic;

const W: usize = 800;
const H: usize = 480;
const LEFT: usize = 70;
const RIGHT: usize = 20;
const TOP: usize = 30;
const BOTTOM: usize = 50;

struct Canvas {
    px: Vec<[u8; 3]>,
}

impl Canvas {
    fn new() -> Canvas {
        Canvas {
            px: vec![[255, 255, 255]; W * H],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            self.px[y as usize * W + x as usize] = c;
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for t in 0..thick {
                self.set(x, y + t, c);
                self.set(x + t, y, c);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (x + (i as i64) * 12 + col * 2, y + r as i64 * 2);
                        for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set(px + ox, py + oy, c);
                        }
                    }
                }
            }
        }
    }
}

/// 5×7 glyphs (bit 4 is the leftmost column); unknown characters draw as blank.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        'a' => [0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'e' => [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'i' => [0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'n' => [0, 0, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'p' => [0, 0, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'r' => [0, 0, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0, 0, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'v' => [0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04],
        _ => [0; 7],
    }
}

fn label(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `train` (blue) and `val` (orange) `(step, loss)` curves into a PNG at `path`.
pub fn loss_curve(path: &Path, train: &[(u64, f64)], val: &[(u64, f64)]) -> Result<()> {
    let mut c = Canvas::new();
    let all: Vec<&(u64, f64)> = train
        .iter()
        .chain(val)
        .filter(|(_, v)| v.is_finite())
        .collect();
    let max_x = all.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let (mut lo, mut hi) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if all.is_empty() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let to_px = |s: u64, v: f64| -> (i64, i64) {
        (
            LEFT as i64 + (s as f64 / max_x * pw) as i64,
            TOP as i64 + ((hi - v) / (hi - lo) * ph) as i64,
        )
    };
    let (grid, axis) = ([225, 225, 225], [60, 60, 60]);
    for k in 0..=5 {
        let f = k as f64 / 5.0;
        let y = TOP as i64 + (f * ph) as i64;
        c.line((LEFT as i64, y), ((W - RIGHT) as i64, y), grid, 1);
        c.text(4, y - 7, &label(hi - f * (hi - lo)), axis);
        let x = LEFT as i64 + (f * pw) as i64;
        c.line((x, TOP as i64), (x, (H - BOTTOM) as i64), grid, 1);
        // Centred under its grid line, but kept inside the image (12 px per character).
        let text = label(f * max_x);
        let width = 12 * text.chars().count() as i64;
        let left = (x - width / 2).clamp(0, W as i64 - width);
        c.text(left, (H - BOTTOM + 8) as i64, &text, axis);
    }
    c.line(
        (LEFT as i64, (H - BOTTOM) as i64),
        ((W - RIGHT) as i64, (H - BOTTOM) as i64),
        axis,
        1,
    );
    c.line(
        (LEFT as i64, TOP as i64),
        (LEFT as i64, (H - BOTTOM) as i64),
        axis,
        1,
    );
    c.text((W / 2 - 24) as i64, (H - 18) as i64, "step", axis);
    type Series<'a> = (&'a [(u64, f64)], [u8; 3], &'a str);
    let series: [Series; 2] = [
        (train, [31, 119, 180], "train loss"),
        (val, [255, 127, 14], "val loss"),
    ];
    for (k, (pts, color, name)) in series.iter().enumerate() {
        for w in pts.windows(2) {
            c.line(to_px(w[0].0, w[0].1), to_px(w[1].0, w[1].1), *color, 2);
        }
        if pts.len() == 1 {
            let (x, y) = to_px(pts[0].0, pts[0].1);
            c.line((x - 3, y), (x + 3, y), *color, 3);
        }
        let ly = 8 + 18 * k as i64;
        c.line(
            ((W - 200) as i64, ly + 6),
            ((W - 170) as i64, ly + 6),
            *color,
            3,
        );
        c.text((W - 160) as i64, ly, name, axis);
    }
    write_atomic(path, &encode_png(&c))
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn encode_png(c: &Canvas) -> Vec<u8> {
    let mut raw = Vec::with_capacity(H * (1 + 3 * W));
    for row in c.px.chunks(W) {
        raw.push(0); // filter: none
        raw.extend(row.iter().flatten());
    }
    // zlib with stored (uncompressed) deflate blocks.
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(W as u32).to_be_bytes());
    ihdr.extend_from_slice(&(H as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}
