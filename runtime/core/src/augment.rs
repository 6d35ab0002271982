//! Data augmentation of training batches: random shifts, flips, rotations, noise,
//! brightness and contrast, applied in place to the images of a batch.
//!
//! A field's samples are images `[H, W]` or `[C, H, W]` (the last two axes are height
//! and width), stored row-major as `f32`. [`augment_batch`] applies a list of
//! [`Augmentation`]s, in order, to every sample of a batch. The semantics follow
//! torchvision's transforms of the same purpose (see each variant); no result is
//! clamped, so data scaled to any range (`[0, 1]`, standardised, ...) stays as it is.
//!
//! **Reproducibility.** Every random draw is a pure function of the run's seed, the
//! epoch, the sample's index in its split and the position of the augmentation in the
//! list ([`sample_state`]): the result does not depend on which batch a sample lands in,
//! on the batch size, or on the order in which samples are processed. Two fields with
//! the same list get the same draws, so an image and its mask stay aligned.

use std::fmt;

use dnnc_tensor::{DType, Data, Tensor};

use crate::rng::{mix64, SplitMix64, GOLDEN_GAMMA};

/// Distinguishes augmentation draws from other streams drawn from the same seed (the
/// ASCII bytes of `"AUGMENT"`).
const AUGMENT_STREAM: u64 = 0x0041_5547_4d45_4e54;

/// One augmentation with its (static) arguments, as the checker resolves it.
pub use dnnc_settings::Augmentation;

/// Why a batch cannot be augmented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AugmentError {
    /// What is wrong, in lowercase without a trailing period.
    pub message: String,
}

impl fmt::Display for AugmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AugmentError {}

/// The first output of a SplitMix64 generator started from `x` (never a fixed point at 0,
/// unlike [`mix64`]).
fn splitmix(x: u64) -> u64 {
    mix64(x.wrapping_add(GOLDEN_GAMMA))
}

/// The generator state of augmentation `position` for sample `index` (its index in the
/// split) in epoch `epoch` of a run seeded with `seed`:
/// `s(s(s(s(seed ^ AUGMENT) ^ epoch) ^ index) ^ position)`, where `s(x)` is the first
/// SplitMix64 output from state `x`. Each augmentation draws from
/// [`SplitMix64::new`] of this state.
pub fn sample_state(seed: u64, epoch: u64, index: u64, position: u64) -> u64 {
    splitmix(splitmix(splitmix(splitmix(seed ^ AUGMENT_STREAM) ^ epoch) ^ index) ^ position)
}

/// The top 24 bits of the next output as a float in `[0, 1)`.
fn unit(rng: &mut SplitMix64) -> f32 {
    unit24(rng.next_u64() >> 40)
}

/// A 24-bit integer as a float in `[0, 1)`.
fn unit24(b: u64) -> f32 {
    b as f32 / (1u32 << 24) as f32
}

/// A factor drawn uniformly from `[1 − amount, 1 + amount)`.
fn factor(rng: &mut SplitMix64, amount: f32) -> f32 {
    1.0 + amount * (2.0 * unit(rng) - 1.0)
}

/// Applies `list` in order to every sample of `batch`, in place.
///
/// `batch` is an `f32` tensor `[N, H, W]` or `[N, C, H, W]`; `indices[i]` is the index in
/// its split of sample `i` of the batch. `scratch` is working space, grown as needed and
/// reusable between calls (so a training loop allocates nothing per batch).
pub fn augment_batch(
    batch: &mut Tensor,
    indices: &[usize],
    list: &[Augmentation],
    seed: u64,
    epoch: u64,
    scratch: &mut Vec<f32>,
) -> Result<(), AugmentError> {
    let (c, h, w) = match batch.shape[..] {
        [_, h, w] => (1, h, w),
        [_, c, h, w] => (c, h, w),
        _ => {
            return Err(AugmentError {
                message: format!(
                    "augmentation needs a batch of images `[N, H, W]` or `[N, C, H, W]`, found shape {:?}",
                    batch.shape
                ),
            })
        }
    };
    if batch.shape[0] != indices.len() {
        return Err(AugmentError {
            message: format!(
                "a batch of {} samples was given {} sample indices",
                batch.shape[0],
                indices.len()
            ),
        });
    }
    let (DType::F32, Data::F32(data)) = (batch.dtype, &mut batch.data) else {
        return Err(AugmentError {
            message: format!("augmentation needs `f32` images, found `{}`", batch.dtype),
        });
    };
    let size = c * h * w;
    if data.len() != size * indices.len() {
        return Err(AugmentError {
            message: format!(
                "the batch holds {} elements, which does not match its shape {:?}",
                data.len(),
                batch.shape
            ),
        });
    }
    if size == 0 {
        return Ok(());
    }
    for (img, &index) in data.chunks_exact_mut(size).zip(indices) {
        for (pos, a) in list.iter().enumerate() {
            let mut rng = SplitMix64::new(sample_state(seed, epoch, index as u64, pos as u64));
            apply(a, img, c, h, w, &mut rng, scratch);
        }
    }
    Ok(())
}

/// Draws the parameters of `a` from `rng` and applies it to one sample.
fn apply(
    a: &Augmentation,
    img: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    rng: &mut SplitMix64,
    scratch: &mut Vec<f32>,
) {
    match *a {
        Augmentation::RandomCrop { padding } => {
            let p = padding as u64;
            let span = p.saturating_mul(2).saturating_add(1);
            let dy = rng.below(span) as i64 - p as i64;
            let dx = rng.below(span) as i64 - p as i64;
            shift(img, c, h, w, dy, dx, scratch);
        }
        Augmentation::HFlip { p } => {
            if unit(rng) < p {
                hflip(img, w);
            }
        }
        Augmentation::Rotate { degrees } => {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let angle = f64::from(degrees) * (2.0 * u - 1.0);
            rotate(img, c, h, w, angle, scratch);
        }
        Augmentation::Noise { std } => add_noise(img, std, rng, scratch),
        Augmentation::Brightness { amount } => {
            let f = factor(rng, amount);
            img.iter_mut().for_each(|x| *x *= f);
        }
        Augmentation::Contrast { amount } => {
            let f = factor(rng, amount);
            contrast(img, f);
        }
    }
}

/// Shifts every channel of one sample: `out[y][x] = in[y + dy][x + dx]`, zero where
/// that is outside the image. (`random_crop` with crop offset `(dy + p, dx + p)` in
/// the padded image.)
pub fn shift(
    img: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    dy: i64,
    dx: i64,
    scratch: &mut Vec<f32>,
) {
    if dy == 0 && dx == 0 {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(img);
    img.fill(0.0);
    let (hi, wi) = (h as i64, w as i64);
    // Output rows `y` with `0 ≤ y + dy < h`, columns `x` with `0 ≤ x + dx < w`.
    let (y0, y1) = ((-dy).clamp(0, hi), (hi - dy).clamp(0, hi));
    let (x0, x1) = ((-dx).clamp(0, wi), (wi - dx).clamp(0, wi));
    if y0 >= y1 || x0 >= x1 {
        return;
    }
    let (x0, x1) = (x0 as usize, x1 as usize);
    let sx0 = (x0 as i64 + dx) as usize;
    for ch in 0..c {
        let base = ch * h * w;
        for y in y0..y1 {
            let sy = (y + dy) as usize;
            let dst = base + y as usize * w;
            let src = base + sy * w;
            img[dst + x0..dst + x1].copy_from_slice(&scratch[src + sx0..src + sx0 + (x1 - x0)]);
        }
    }
}

/// Mirrors the width axis of one sample: `out[y][x] = in[y][w − 1 − x]`.
pub fn hflip(img: &mut [f32], w: usize) {
    if w == 0 {
        return;
    }
    img.chunks_exact_mut(w).for_each(<[f32]>::reverse);
}

/// Rotates every channel of one sample by `degrees` counter-clockwise about the image
/// centre `((w − 1) / 2, (h − 1) / 2)` (in pixel indices, as torchvision), with
/// bilinear interpolation and zero fill: output pixel `(x, y)` takes the input at
/// `cx + cos θ · (x − cx) − sin θ · (y − cy)`, `cy + sin θ · (x − cx) + cos θ · (y − cy)`,
/// where `y` grows downwards (each row's start in `f64`, then `f32`).
pub fn rotate(img: &mut [f32], c: usize, h: usize, w: usize, degrees: f64, scratch: &mut Vec<f32>) {
    if degrees == 0.0 || h == 0 || w == 0 {
        return;
    }
    // The source, with a border of one zero pixel on every side, so that the four
    // neighbours of any point within one pixel of the image can be read without
    // testing each.
    let (pw, ph) = (w + 2, h + 2);
    scratch.clear();
    scratch.resize(c * ph * pw, 0.0);
    for (ch, plane) in img.chunks_exact(h * w).enumerate() {
        for (y, row) in plane.chunks_exact(w).enumerate() {
            let at = ch * ph * pw + (y + 1) * pw + 1;
            scratch[at..at + w].copy_from_slice(row);
        }
    }
    let src = &scratch[..];
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let plane = h * w;
    let pplane = ph * pw;
    // Shifted by one pixel for the border, and by `OFFSET` more so that truncation is
    // the floor wherever a neighbour may be inside.
    const OFFSET: f32 = 4.0;
    let (lim_x, lim_y) = (w as u32 + OFFSET as u32, h as u32 + OFFSET as u32);
    let (cos32, sin32) = (cos as f32, sin as f32);
    for y in 0..h {
        // Along a row the source point moves by `(cos θ, sin θ)` per pixel.
        let dy = y as f64 - cy;
        let bx = (cx - cos * cx - sin * dy) as f32 + 1.0 + OFFSET;
        let by = (cy - sin * cx + cos * dy) as f32 + 1.0 + OFFSET;
        for x in 0..w {
            let sx = bx + cos32 * x as f32;
            let sy = by + sin32 * x as f32;
            let out = y * w + x;
            // Truncation is the floor where it matters (`sx`, `sy` ≥ `OFFSET`). A point
            // with no neighbour inside reads the zero corner of the border with weight 1
            // instead of branching.
            let (xi, yi) = (sx as u32, sy as u32);
            let inside = sx >= OFFSET && sy >= OFFSET && xi <= lim_x && yi <= lim_y;
            let (tx, ty, at) = if inside {
                (
                    sx - xi as f32,
                    sy - yi as f32,
                    (yi - OFFSET as u32) as usize * pw + (xi - OFFSET as u32) as usize,
                )
            } else {
                (0.0, 0.0, 0)
            };
            for ch in 0..c {
                let (o, i) = (ch * plane + out, ch * pplane + at);
                let (a, b) = (src[i], src[i + 1]);
                let (c, d) = (src[i + pw], src[i + pw + 1]);
                img[o] = (1.0 - ty) * ((1.0 - tx) * a + tx * b) + ty * ((1.0 - tx) * c + tx * d);
            }
        }
    }
}

/// Adds `N(0, std²)` noise to every element, two at a time by Marsaglia's polar
/// method: draw `u`, `v` uniform in `[−1, 1)` (the top and the next 24 bits of one
/// output) until `0 < s = u² + v² < 1`; the pair gets `u · m` and `v · m`,
/// `m = std · sqrt(−2 ln s / s)`. The draws come first, into `scratch`, and the
/// arithmetic after, in a loop without branches that the compiler vectorises.
pub fn add_noise(img: &mut [f32], std: f32, rng: &mut SplitMix64, scratch: &mut Vec<f32>) {
    if std == 0.0 {
        return;
    }
    // Every candidate is written, and kept by advancing past it when accepted (no
    // branch to mispredict on the one draw in five that is rejected).
    let pairs = img.len().div_ceil(2);
    scratch.clear();
    scratch.resize(3 * (pairs + 1), 0.0);
    let mut n = 0;
    while n < pairs {
        let b = rng.next_u64();
        let u = 2.0 * unit24(b >> 40) - 1.0;
        let v = 2.0 * unit24((b >> 16) & 0xff_ffff) - 1.0;
        let s = u * u + v * v;
        scratch[3 * n..3 * n + 3].copy_from_slice(&[u, v, s]);
        n += usize::from(s > 0.0 && s < 1.0);
    }
    let mut pairs = img.chunks_exact_mut(2);
    let mut draws = scratch.chunks_exact(3);
    for (pair, d) in (&mut pairs).zip(&mut draws) {
        let m = std * (-2.0 * ln(d[2]) / d[2]).sqrt();
        pair[0] += d[0] * m;
        pair[1] += d[1] * m;
    }
    if let ([x], Some(d)) = (pairs.into_remainder(), draws.next()) {
        *x += d[0] * std * (-2.0 * ln(d[2]) / d[2]).sqrt();
    }
}

/// The natural logarithm of a positive, finite, normal `x`, within 2e-7 of `f32::ln`
/// (relative to `max(1, |ln x|)`), computed the same way on every machine (no call to the platform's libm):
/// `x = 2^e · m` with `m` in `[1, 2)`, `ln x = e ln 2 + 2 atanh(t)`, `t = (m − 1) / (m + 1)`,
/// the series of `atanh` up to `t¹³` (`t ≤ 1/3`).
fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    // 2 atanh(t) = 2 (t + t³/3 + t⁵/5 + ...), to t¹³: the rest is below 1e-8.
    let mut series = 1.0 / 13.0;
    for k in [11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        series = 1.0 / k + t2 * series;
    }
    let series = 2.0 * t * series;
    e as f32 * std::f32::consts::LN_2 + series
}

/// `mean + f · (x − mean)` for every element, `mean` the sample's mean.
pub fn contrast(img: &mut [f32], f: f32) {
    if img.is_empty() {
        return;
    }
    // Four running sums in `f64` (element `i` into sum `i mod 4`), added at the end.
    let mut sums = [0.0f64; 4];
    let mut quads = img.chunks_exact(4);
    for q in &mut quads {
        for (s, &x) in sums.iter_mut().zip(q) {
            *s += f64::from(x);
        }
    }
    for (s, &x) in sums.iter_mut().zip(quads.remainder()) {
        *s += f64::from(x);
    }
    let total = (sums[0] + sums[1]) + (sums[2] + sums[3]);
    let mean = (total / img.len() as f64) as f32;
    img.iter_mut().for_each(|x| *x = mean + f * (*x - mean));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    /// `[n, h, w]` with element values `0, 1, 2, ...`.
    fn ramp(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product::<usize>();
        Tensor::f32(shape, (0..n).map(|v| v as f32).collect()).unwrap()
    }

    fn f32s(t: &Tensor) -> Vec<f32> {
        t.to_f32_vec()
    }

    #[test]
    fn shift_moves_by_a_known_offset_with_zero_fill() {
        // 3x4, shifted so that out[y][x] = in[y + 1][x - 2].
        let mut img: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        shift(&mut img, 1, 3, 4, 1, -2, &mut Vec::new());
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, 5.0, 6.0,
            0.0, 0.0, 9.0, 10.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(img, want);
        // Every channel moves the same way; a shift past the edge leaves zeros.
        let mut two: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        shift(&mut two, 2, 2, 2, 0, 1, &mut Vec::new());
        assert_eq!(two, [2.0, 0.0, 4.0, 0.0, 6.0, 0.0, 8.0, 0.0]);
        let mut gone = vec![1.0; 4];
        shift(&mut gone, 1, 2, 2, 5, 0, &mut Vec::new());
        assert_eq!(gone, [0.0; 4]);
    }

    #[test]
    fn random_crop_shifts_within_the_padding() {
        // A single bright pixel in the middle of a 7x7 image moves by at most 2 on
        // each axis, and every offset in [-2, 2]² turns up.
        let mut seen = std::collections::HashSet::new();
        for index in 0..400 {
            let mut t = Tensor::f32(vec![1, 7, 7], {
                let mut v = vec![0.0; 49];
                v[3 * 7 + 3] = 1.0;
                v
            })
            .unwrap();
            let list = [Augmentation::RandomCrop { padding: 2 }];
            augment_batch(&mut t, &[index], &list, 1, 0, &mut Vec::new()).unwrap();
            let v = f32s(&t);
            assert_eq!(v.iter().sum::<f32>(), 1.0);
            let at = v.iter().position(|&x| x == 1.0).unwrap();
            let (y, x) = (at / 7, at % 7);
            assert!((1..=5).contains(&y) && (1..=5).contains(&x));
            seen.insert((y, x));
        }
        assert_eq!(seen.len(), 25);
    }

    #[test]
    fn hflip_mirrors_rows_and_follows_p() {
        let mut img: Vec<f32> = (1..=6).map(|v| v as f32).collect();
        hflip(&mut img, 3);
        assert_eq!(img, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        let flips = |p: f32| {
            (0..1000)
                .filter(|&i| {
                    let mut t = ramp(vec![1, 1, 2]);
                    let list = [Augmentation::HFlip { p }];
                    augment_batch(&mut t, &[i], &list, 3, 0, &mut Vec::new()).unwrap();
                    f32s(&t) == [1.0, 0.0]
                })
                .count()
        };
        assert_eq!(flips(0.0), 0);
        assert_eq!(flips(1.0), 1000);
        assert!((440..560).contains(&flips(0.5)), "{}", flips(0.5));
    }

    #[test]
    fn rotation_by_90_degrees_is_a_transpose_and_a_flip() {
        // Counter-clockwise by 90°: out[y][x] = in[x][w − 1 − y] (numpy's rot90), which
        // bilinear interpolation reproduces exactly up to the rounding of cos(π/2).
        for n in [3usize, 4, 5] {
            let orig: Vec<f32> = (0..2 * n * n).map(|v| v as f32 + 1.0).collect();
            let mut img = orig.clone();
            rotate(&mut img, 2, n, n, 90.0, &mut Vec::new());
            let mut want = vec![0.0; 2 * n * n];
            for ch in 0..2 {
                for y in 0..n {
                    for x in 0..n {
                        want[ch * n * n + y * n + x] = orig[ch * n * n + x * n + (n - 1 - y)];
                    }
                }
            }
            assert!(close(&img, &want, 1e-4), "{n}: {img:?} vs {want:?}");
            // And −90° undoes it; 180° is both flips.
            rotate(&mut img, 2, n, n, -90.0, &mut Vec::new());
            assert!(close(&img, &orig, 1e-4));
            rotate(&mut img, 2, n, n, 180.0, &mut Vec::new());
            let mut flipped = orig.clone();
            for plane in flipped.chunks_exact_mut(n * n) {
                plane.reverse();
            }
            assert!(close(&img, &flipped, 1e-4));
        }
    }

    #[test]
    fn rotation_interpolates_bilinearly_with_zero_fill() {
        // A 2x2 image rotated by 45°: the centre is (0.5, 0.5); output pixel (0, 0)
        // samples the input at (0.5, 0.5 − √2/2) = (0.5, −0.207).
        let orig = vec![1.0, 2.0, 3.0, 4.0];
        let mut img = orig.clone();
        rotate(&mut img, 1, 2, 2, 45.0, &mut Vec::new());
        let r = std::f64::consts::FRAC_1_SQRT_2;
        let (sx, sy) = (0.5f64, 0.5 - r);
        // Rows −1 (zero) and 0 with weights 1 − (sy + 1) and sy + 1, columns 0 and 1
        // half and half.
        let ty = (sy - sy.floor()) as f32;
        let tx = (sx - sx.floor()) as f32;
        let want = ty * ((1.0 - tx) * 1.0 + tx * 2.0);
        assert!((img[0] - want).abs() < 1e-6, "{} vs {want}", img[0]);
        // Zero rotation changes nothing.
        let mut same = orig.clone();
        rotate(&mut same, 1, 2, 2, 0.0, &mut Vec::new());
        assert_eq!(same, orig);
    }

    #[test]
    fn noise_has_the_requested_statistics() {
        let mut t = Tensor::f32(vec![100, 20, 20], vec![0.5; 40_000]).unwrap();
        let idx: Vec<usize> = (0..100).collect();
        let list = [Augmentation::Noise { std: 0.1 }];
        augment_batch(&mut t, &idx, &list, 9, 0, &mut Vec::new()).unwrap();
        let v = f32s(&t);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((mean - 0.5).abs() < 0.002, "{mean}");
        assert!((var.sqrt() - 0.1).abs() < 0.002, "{}", var.sqrt());
        // About 68 % within one standard deviation.
        let within = v.iter().filter(|&&x| (x - 0.5).abs() < 0.1).count() as f64 / n;
        assert!((within - 0.6827).abs() < 0.01, "{within}");
    }

    #[test]
    fn the_logarithm_is_accurate() {
        let mut worst = 0.0f32;
        for i in 1..=100_000u32 {
            for x in [i as f32 / 100_000.0, i as f32 * 1e-30] {
                worst = worst.max((ln(x) - x.ln()).abs() / x.ln().abs().max(1.0));
            }
        }
        assert!(worst < 2e-7, "{worst}");
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn brightness_and_contrast_follow_their_formulas() {
        let orig = [0.0f32, 0.25, 0.5, 1.0];
        // Brightness: one factor per sample, in [1 − a, 1 + a].
        for i in 0..50 {
            let mut t = Tensor::f32(vec![1, 2, 2], orig.to_vec()).unwrap();
            let list = [Augmentation::Brightness { amount: 0.2 }];
            augment_batch(&mut t, &[i], &list, 5, 0, &mut Vec::new()).unwrap();
            let v = f32s(&t);
            let f = v[3];
            assert!((0.8..=1.2).contains(&f), "{f}");
            assert!(close(&v, &orig.map(|x| x * f), 1e-6));
        }
        // Contrast by hand: mean 0.4375, factor 2 doubles every distance to it.
        let mut img = orig.to_vec();
        contrast(&mut img, 2.0);
        assert!(
            close(&img, &[-0.4375, 0.0625, 0.5625, 1.5625], 1e-6),
            "{img:?}"
        );
        for i in 0..50 {
            let mut t = Tensor::f32(vec![1, 2, 2], orig.to_vec()).unwrap();
            let list = [Augmentation::Contrast { amount: 0.3 }];
            augment_batch(&mut t, &[i], &list, 5, 0, &mut Vec::new()).unwrap();
            let v = f32s(&t);
            // The mean is kept; the factor is the ratio of distances to it.
            let m = v.iter().sum::<f32>() / 4.0;
            assert!((m - 0.4375).abs() < 1e-6);
            let f = (v[3] - m) / (1.0 - 0.4375);
            assert!((0.7..=1.3).contains(&f), "{f}");
        }
    }

    fn all() -> Vec<Augmentation> {
        vec![
            Augmentation::RandomCrop { padding: 2 },
            Augmentation::Rotate { degrees: 10.0 },
            Augmentation::HFlip { p: 0.5 },
            Augmentation::Noise { std: 0.05 },
            Augmentation::Brightness { amount: 0.1 },
            Augmentation::Contrast { amount: 0.1 },
        ]
    }

    fn augmented(seed: u64, epoch: u64, indices: &[usize], chunk: usize) -> Vec<f32> {
        // The same samples, augmented in batches of `chunk`.
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for part in indices.chunks(chunk) {
            let data: Vec<f32> = part
                .iter()
                .flat_map(|&i| (0..2 * 6 * 5).map(move |v| ((i * 7 + v) % 11) as f32 / 10.0))
                .collect();
            let mut t = Tensor::f32(vec![part.len(), 2, 6, 5], data).unwrap();
            augment_batch(&mut t, part, &all(), seed, epoch, &mut scratch).unwrap();
            out.extend(f32s(&t));
        }
        out
    }

    #[test]
    fn augmentation_is_deterministic_per_seed_epoch_and_sample() {
        let idx: Vec<usize> = vec![4, 0, 9, 2, 7, 1, 3];
        let a = augmented(42, 3, &idx, 7);
        assert_eq!(a, augmented(42, 3, &idx, 7));
        assert_ne!(a, augmented(42, 4, &idx, 7), "another epoch draws anew");
        assert_ne!(a, augmented(43, 3, &idx, 7), "another seed draws anew");
    }

    #[test]
    fn augmentation_does_not_depend_on_the_batch_size_or_order() {
        let idx: Vec<usize> = vec![4, 0, 9, 2, 7, 1, 3];
        let whole = augmented(42, 1, &idx, 7);
        for chunk in [1, 2, 3, 5] {
            assert_eq!(whole, augmented(42, 1, &idx, chunk), "batch size {chunk}");
        }
        // A sample's result depends on its index, not on its place in the batch.
        let size = 2 * 6 * 5;
        let reversed: Vec<usize> = idx.iter().rev().copied().collect();
        let back = augmented(42, 1, &reversed, 3);
        for (k, _) in idx.iter().enumerate() {
            let j = idx.len() - 1 - k;
            assert_eq!(
                whole[k * size..(k + 1) * size],
                back[j * size..(j + 1) * size]
            );
        }
    }

    #[test]
    fn bad_batches_are_errors() {
        let list = all();
        let mut flat = ramp(vec![2, 6]);
        assert!(augment_batch(&mut flat, &[0, 1], &list, 0, 0, &mut Vec::new()).is_err());
        let mut t = ramp(vec![2, 3, 3]);
        let e = augment_batch(&mut t, &[0], &list, 0, 0, &mut Vec::new()).unwrap_err();
        assert!(e.message.contains("2 samples"), "{e}");
        let mut ints = Tensor::new(DType::U8, vec![1, 2, 2], Data::U8(vec![0; 4])).unwrap();
        assert!(augment_batch(&mut ints, &[0], &list, 0, 0, &mut Vec::new()).is_err());
        // An empty list or an empty batch changes nothing.
        let before = t.clone();
        augment_batch(&mut t, &[0, 1], &[], 0, 0, &mut Vec::new()).unwrap();
        assert_eq!(t, before);
        let mut none = Tensor::f32(vec![0, 3, 3], vec![]).unwrap();
        augment_batch(&mut none, &[], &list, 0, 0, &mut Vec::new()).unwrap();
    }
}
