//! Attribution maps drawn over their inputs: each image beside itself with the map's
//! magnitude as a colour heatmap on top, so a user sees which pixels a class score
//! depends on.
//!
//! A map has the input's shape (saliency, gradient × input, integrated gradients;
//! channels are merged by their largest magnitude) or is `[N, h, w]` at a layer's
//! resolution (Grad-CAM), upsampled bilinearly to the image's size with PyTorch's
//! `interpolate(mode = "bilinear", align_corners = False)` rule. Each map is scaled
//! by its own largest magnitude, then coloured from blue (0) through green and yellow
//! to red (1) and blended half and half with the grey image.

use dnnc_tensor::Tensor;

use crate::image::image_shape;

/// The batch of `[N, 3, H, 2W]` RGB images: each input (grey or colour) beside the
/// same input with its map overlaid.
pub fn overlay(inputs: &Tensor, maps: &Tensor) -> Result<Tensor, String> {
    let (c, h, w) = image_shape(&inputs.shape)?;
    let n = inputs.shape[0];
    if maps.shape.first() != Some(&n) {
        return Err(format!("{n} inputs but maps of shape {:?}", maps.shape));
    }
    let (mc, mh, mw) = match maps.shape[..] {
        [_, mh, mw] if maps.shape[1..] != inputs.shape[1..] => (1, mh, mw),
        _ if maps.shape == inputs.shape => (c, h, w),
        _ => {
            return Err(format!(
                "maps of shape {:?} fit neither the inputs {:?} nor [N, h, w]",
                maps.shape, inputs.shape
            ))
        }
    };
    if mh == 0 || mw == 0 {
        return Err(format!("maps of shape {:?} are empty", maps.shape));
    }
    let x = inputs.data.to_f32_vec();
    let m = maps.data.to_f32_vec();
    let mut out = Vec::with_capacity(n * 3 * h * 2 * w);
    for i in 0..n {
        // The magnitude of the map, channels merged, at its own resolution.
        let per = mh * mw;
        let mut mag = vec![0f32; per];
        for ch in 0..mc {
            for (k, v) in mag.iter_mut().enumerate() {
                let a = m[i * mc * per + ch * per + k].abs();
                if a > *v {
                    *v = a;
                }
            }
        }
        let top = mag.iter().copied().fold(0f32, f32::max);
        let scale = if top > 0.0 && top.is_finite() {
            1.0 / top
        } else {
            0.0
        };
        let up = upsample(&mag, mh, mw, h, w);
        let img = &x[i * c * h * w..(i + 1) * c * h * w];
        for rgb in 0..3 {
            for y in 0..h {
                for xx in 0..w {
                    out.push(pixel(img, c, h, w, rgb, y, xx));
                }
                for xx in 0..w {
                    let grey =
                        (0..c).map(|ch| pixel(img, c, h, w, ch, y, xx)).sum::<f32>() / c as f32;
                    let heat = colour((up[y * w + xx] * scale).clamp(0.0, 1.0))[rgb];
                    out.push(0.5 * grey.clamp(0.0, 1.0) + 0.5 * heat);
                }
            }
        }
    }
    Tensor::f32(vec![n, 3, h, 2 * w], out).map_err(|e| e.to_string())
}

/// Channel `rgb` of the image at `(y, x)`; a grey image gives the same value for all.
fn pixel(img: &[f32], c: usize, h: usize, w: usize, rgb: usize, y: usize, x: usize) -> f32 {
    let ch = if c == 3 { rgb } else { 0 };
    img[ch * h * w + y * w + x]
}

/// `src` (`sh × sw`) resized to `dh × dw` by bilinear interpolation with half-pixel
/// centres (`align_corners = False`), clamped at the borders.
pub fn upsample(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<f32> {
    let coord = |d: usize, s: usize, dn: usize| -> (usize, usize, f32) {
        let scale = s as f32 / dn as f32;
        let c = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
        let lo = (c.floor() as usize).min(s - 1);
        let hi = (lo + 1).min(s - 1);
        (lo, hi, c - lo as f32)
    };
    let mut out = Vec::with_capacity(dh * dw);
    for y in 0..dh {
        let (y0, y1, fy) = coord(y, sh, dh);
        for x in 0..dw {
            let (x0, x1, fx) = coord(x, sw, dw);
            let top = src[y0 * sw + x0] * (1.0 - fx) + src[y0 * sw + x1] * fx;
            let bottom = src[y1 * sw + x0] * (1.0 - fx) + src[y1 * sw + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// A colour for `t` in `[0, 1]`: blue, cyan, green, yellow, red ("jet").
fn colour(t: f32) -> [f32; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [0.0, 1.0, 0.0],
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 0.0],
    ];
    let at = t.clamp(0.0, 1.0) * 4.0;
    let k = (at.floor() as usize).min(3);
    let f = at - k as f32;
    std::array::from_fn(|i| STOPS[k][i] * (1.0 - f) + STOPS[k + 1][i] * f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_matches_pytorch_bilinear() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]),
        // size=(4, 4), mode="bilinear", align_corners=False)
        let up = upsample(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        let want = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in up.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{up:?}");
        }
    }

    #[test]
    fn overlay_puts_each_input_beside_its_heatmap() {
        let x = Tensor::f32(vec![1, 2, 2], vec![0.0, 0.5, 1.0, 0.25]).unwrap();
        let m = Tensor::f32(vec![1, 1, 1], vec![2.0]).unwrap();
        let o = overlay(&x, &m).unwrap();
        assert_eq!(o.shape, vec![1, 3, 2, 4]);
        let v = o.to_f32_vec();
        // Left half: the grey input in every channel; right half: half grey, half
        // the colour of the largest value (red).
        assert_eq!(&v[0..2], &[0.0, 0.5]);
        assert_eq!(v[2], 0.5);
        assert_eq!(v[3], 0.75);
        assert_eq!(v[8 + 2], 0.0); // green of red
        assert!(overlay(&x, &Tensor::f32(vec![2, 1, 1], vec![1.0, 1.0]).unwrap()).is_err());
    }
}
