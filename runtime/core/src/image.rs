//! Pictures of samples: a batch of images as one PNG grid, so a user sees what a
//! generative model draws (a GAN's digits appearing epoch by epoch, a VAE's
//! reconstructions).
//!
//! A batch is `[N, H, W]` (grey), `[N, C, H, W]` with `C` 1 or 3, or `[N, D]` with `D` a
//! square (grey `√D × √D` images, as an MLP's 784 outputs). Values are clamped to
//! `[0, 1]` (what a sigmoid gives; data scaled so) and stored as 8-bit pixels; images
//! are laid out in rows of `⌈√N⌉`, 2 pixels apart on black.

use std::path::Path;

use dnnc_tensor::Tensor;

/// Pixels between images.
const GAP: usize = 2;

/// An image grid in memory: 8-bit RGB, row-major.
pub struct Grid {
    /// Pixels across.
    pub width: usize,
    /// Pixels down.
    pub height: usize,
    /// Three bytes per pixel, row by row.
    pub rgb: Vec<u8>,
}

/// `(channels, height, width)` of each image of a batch of `shape`.
pub(crate) fn image_shape(shape: &[usize]) -> Result<(usize, usize, usize), String> {
    match *shape {
        [_, h, w] => Ok((1, h, w)),
        [_, c, h, w] if c == 1 || c == 3 => Ok((c, h, w)),
        [_, d] => {
            let side = (d as f64).sqrt().round() as usize;
            if side * side == d && d > 0 {
                Ok((1, side, side))
            } else {
                Err(format!(
                    "samples of {d} values are not square images; give them the shape [N, H, W]"
                ))
            }
        }
        _ => Err(format!(
            "samples of shape {shape:?} are not images: expected [N, H, W], [N, 1 or 3, H, W] or [N, H·W]"
        )),
    }
}

/// The grid of the images of `batch` (`f32`).
pub fn grid(batch: &Tensor) -> Result<Grid, String> {
    let (c, h, w) = image_shape(&batch.shape)?;
    let n = batch.shape[0];
    if n == 0 || h == 0 || w == 0 {
        return Err("there are no samples to draw".into());
    }
    let values = batch.data.to_f32_vec();
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let width = cols * w + (cols + 1) * GAP;
    let height = rows * h + (rows + 1) * GAP;
    let mut rgb = vec![0u8; width * height * 3];
    let per = c * h * w;
    for i in 0..n {
        let (gy, gx) = (i / cols, i % cols);
        let (oy, ox) = (GAP + gy * (h + GAP), GAP + gx * (w + GAP));
        for y in 0..h {
            for x in 0..w {
                let at = |ch: usize| values[i * per + ch * h * w + y * w + x];
                let px = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                let (r, g, b) = if c == 3 {
                    (px(at(0)), px(at(1)), px(at(2)))
                } else {
                    let v = px(at(0));
                    (v, v, v)
                };
                let o = ((oy + y) * width + ox + x) * 3;
                rgb[o..o + 3].copy_from_slice(&[r, g, b]);
            }
        }
    }
    Ok(Grid { width, height, rgb })
}

/// Each image of `inputs` beside the image of `outputs` at the same index (an
/// autoencoder's digit and its reconstruction), as one batch of images twice as wide;
/// both batches must hold images of one shape.
pub fn side_by_side(inputs: &Tensor, outputs: &Tensor) -> Result<Tensor, String> {
    let (c, h, w) = image_shape(&inputs.shape)?;
    if image_shape(&outputs.shape)? != (c, h, w) || inputs.shape[0] != outputs.shape[0] {
        return Err(format!(
            "inputs {:?} and outputs {:?} are not images of one shape",
            inputs.shape, outputs.shape
        ));
    }
    let n = inputs.shape[0];
    let (a, b) = (inputs.data.to_f32_vec(), outputs.data.to_f32_vec());
    let mut out = Vec::with_capacity(2 * a.len());
    for i in 0..n {
        for ch in 0..c {
            for y in 0..h {
                let at = i * c * h * w + ch * h * w + y * w;
                out.extend_from_slice(&a[at..at + w]);
                out.extend_from_slice(&b[at..at + w]);
            }
        }
    }
    Tensor::f32(vec![n, c, h, 2 * w], out).map_err(|e| e.to_string())
}

/// The PNG bytes of `g`.
pub fn png_bytes(g: &Grid) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, g.width as u32, g.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&g.rgb).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Writes the images of `batch` as a PNG grid to `path`, atomically; the error names
/// the file.
pub fn write_grid(path: &Path, batch: &Tensor) -> Result<(), String> {
    let at = |e: String| format!("{}: {e}", path.display());
    let bytes = png_bytes(&grid(batch).map_err(at)?).map_err(at)?;
    dnnc_data::files::write_atomically(path, &bytes).map_err(|e| at(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_flat_images_is_a_square_grid() {
        // Five 2×2 images: a grid of 3 columns and 2 rows.
        let t = Tensor::f32(vec![5, 4], (0..20).map(|i| i as f32 / 19.0).collect()).unwrap();
        let g = grid(&t).unwrap();
        assert_eq!((g.width, g.height), (3 * 2 + 4 * GAP, 2 * 2 + 3 * GAP));
        // The first pixel of the first image is 0, the last of the last 255.
        assert_eq!(g.rgb[(GAP * g.width + GAP) * 3], 0);
        let last = ((GAP + 1) * g.width + GAP + 1) * 3; // image 0, pixel (1, 1): 3/19
        assert_eq!(g.rgb[last], (3.0f32 / 19.0 * 255.0).round() as u8);
        let png = png_bytes(&g).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(grid(&Tensor::f32(vec![2, 5], vec![0.0; 10]).unwrap()).is_err());
    }
}
