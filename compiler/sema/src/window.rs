//! Shape rules of the sliding-window builtins `conv2d`, `max_pool2d` and `avg_pool2d`.
//!
//! A window of size `k` moved by `stride` over `n` positions padded by `padding` on
//! both sides fits `(n + 2*padding - k) / stride + 1` times. With known sizes the
//! division rounds down, like PyTorch; with symbolic sizes it must be exact, like every
//! division of dimensions.

use crate::dim::Dim;

/// Why a window does not give an output size.
#[derive(Clone, Debug, PartialEq)]
pub enum WindowError {
    /// The padded input is smaller than the window.
    TooLarge { padded: Dim, window: Dim },
    /// The stride is not positive.
    BadStride(Dim),
    /// A symbolic span that the stride cannot be shown to divide.
    NotDivisible { span: Dim, stride: Dim },
}

/// The number of window positions along one axis.
pub fn out_dim(n: &Dim, k: &Dim, stride: &Dim, padding: &Dim) -> Result<Dim, WindowError> {
    let overflow = || WindowError::TooLarge {
        padded: n.clone(),
        window: k.clone(),
    };
    let padded = padding
        .checked_add(padding)
        .and_then(|p2| n.checked_add(&p2))
        .ok_or_else(overflow)?;
    let span = padded.checked_sub(k).ok_or_else(overflow)?;
    if let Some(s) = stride.as_const() {
        if s < 1 {
            return Err(WindowError::BadStride(stride.clone()));
        }
    }
    if let (Some(sp), Some(s)) = (span.as_const(), stride.as_const()) {
        if sp < 0 {
            return Err(WindowError::TooLarge {
                padded,
                window: k.clone(),
            });
        }
        return Ok(Dim::constant(sp / s + 1));
    }
    let steps = if stride.as_const() == Some(1) {
        Some(span.clone())
    } else {
        span.checked_div(stride)
    };
    steps
        .and_then(|q| q.checked_add(&Dim::constant(1)))
        .ok_or(WindowError::NotDivisible {
            span,
            stride: stride.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: i64) -> Dim {
        Dim::constant(v)
    }

    #[test]
    fn known_sizes_round_down() {
        assert_eq!(out_dim(&c(28), &c(5), &c(1), &c(0)), Ok(c(24)));
        assert_eq!(out_dim(&c(7), &c(3), &c(2), &c(1)), Ok(c(4)));
        assert_eq!(out_dim(&c(24), &c(2), &c(2), &c(0)), Ok(c(12)));
        assert!(matches!(
            out_dim(&c(3), &c(5), &c(1), &c(0)),
            Err(WindowError::TooLarge { .. })
        ));
    }

    #[test]
    fn symbolic_sizes_divide_exactly() {
        let h = Dim::sym("H");
        let want = h.checked_sub(&c(2)).unwrap();
        assert_eq!(out_dim(&h, &c(3), &c(1), &c(0)), Ok(want));
        let two_h = h.checked_mul(&c(2)).unwrap();
        assert_eq!(out_dim(&two_h, &c(2), &c(2), &c(0)), Ok(h.clone()));
        assert!(matches!(
            out_dim(&h, &c(2), &c(2), &c(0)),
            Err(WindowError::NotDivisible { .. })
        ));
    }
}
