//! Sizes of tensors and the memory a job may use: checked arithmetic from shapes to
//! bytes, the memory this machine has available, and how both are shown to people.
//!
//! Every allocation that a user's program decides (parameters, optimizer state, the
//! arena of a compiled step, a batch) is sized with these functions and compared with
//! [`available_bytes`] before it is made, so a model too large for the machine is
//! refused with both numbers instead of aborting in the allocator.

/// The most bytes one tensor may take: 2^47, the address space of a 64-bit process on
/// x86-64 and AArch64 (the checker's limit too, error E0310).
pub const MAX_TENSOR_BYTES: u128 = 1 << 47;

/// The number of elements of `shape`, or `None` when the product overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The bytes of `shape` with elements of `elem_bytes` each, saturating (never wraps).
pub fn bytes_of(shape: &[usize], elem_bytes: usize) -> u128 {
    shape
        .iter()
        .fold(elem_bytes as u128, |n, &d| n.saturating_mul(d as u128))
}

/// `bytes` in binary units with three significant digits (`4.00 TiB`, `512 bytes`).
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// The memory this process can still use: the kernel's `MemAvailable` plus free swap
/// (Linux), or `None` where that cannot be read. `DNNC_MEMORY_LIMIT` (bytes) lowers it,
/// for tests and shared machines.
pub fn available_bytes() -> Option<u128> {
    let from_env = std::env::var("DNNC_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse::<u128>().ok());
    let from_kernel = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let field = |name: &str| -> Option<u128> {
                let line = text.lines().find(|l| l.starts_with(name))?;
                let kib: u128 = line[name.len()..]
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(kib * 1024)
            };
            Some(field("MemAvailable:")? + field("SwapFree:").unwrap_or(0))
        });
    match (from_env, from_kernel) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a job needs, by purpose, checked against the machine before allocating.
#[derive(Clone, Debug, Default)]
pub struct MemoryNeed {
    parts: Vec<(String, u128)>,
}

impl MemoryNeed {
    pub fn new() -> MemoryNeed {
        MemoryNeed::default()
    }

    /// Adds `bytes` for `what` ("parameters and optimizer state", "the arena", ...).
    pub fn add(&mut self, what: impl Into<String>, bytes: u128) {
        let what = what.into();
        match self.parts.iter_mut().find(|(w, _)| *w == what) {
            Some((_, b)) => *b = b.saturating_add(bytes),
            None => self.parts.push((what, bytes)),
        }
    }

    pub fn total(&self) -> u128 {
        self.parts
            .iter()
            .fold(0u128, |t, (_, b)| t.saturating_add(*b))
    }

    /// `Err` giving the need by part and what the machine has, when the total exceeds
    /// [`available_bytes`] (or a tensor's address-space limit).
    pub fn check(&self, job: &str) -> Result<(), MemoryError> {
        let total = self.total();
        let parts: Vec<String> = self
            .parts
            .iter()
            .filter(|(_, b)| *b > 0)
            .map(|(w, b)| format!("{} for {w}", human_bytes(*b)))
            .collect();
        let available = if total > MAX_TENSOR_BYTES {
            None
        } else {
            match available_bytes() {
                Some(avail) if total > avail => Some(avail),
                _ => return Ok(()),
            }
        };
        Err(MemoryError::TooMuch {
            job: job.to_string(),
            need: total,
            parts: parts.join(", "),
            available,
        })
    }
}

/// Why memory could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// A job needs more than the machine has available (`Some`), or more than a 64-bit
    /// process can address (`None`); `parts` says what for.
    TooMuch {
        job: String,
        need: u128,
        parts: String,
        available: Option<u128>,
    },
    /// An allocation of `bytes` failed.
    AllocationFailed { bytes: u128 },
}

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryError::TooMuch {
                job,
                need,
                parts,
                available: None,
            } => write!(
                f,
                "{job} would need {} ({parts}), more than a 64-bit process can address",
                human_bytes(*need)
            ),
            MemoryError::TooMuch {
                job,
                need,
                parts,
                available: Some(avail),
            } => write!(
                f,
                "{job} would need {} of memory ({parts}), but only {} is available",
                human_bytes(*need),
                human_bytes(*avail)
            ),
            MemoryError::AllocationFailed { bytes } => {
                write!(f, "cannot allocate {}", human_bytes(*bytes))
            }
        }
    }
}

impl std::error::Error for MemoryError {}

/// A vector of `n` copies of `v`, or `Err` when the memory cannot be had (instead of
/// aborting the process).
pub fn try_filled<T: Clone>(n: usize, v: T) -> Result<Vec<T>, MemoryError> {
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| MemoryError::AllocationFailed {
            bytes: (n as u128).saturating_mul(std::mem::size_of::<T>() as u128),
        })?;
    out.resize(n, v);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_never_wrap() {
        assert_eq!(checked_numel(&[2, 3, 4]), Some(24));
        assert_eq!(checked_numel(&[1 << 40, 1 << 40]), None);
        assert_eq!(bytes_of(&[1 << 62], 4), 1u128 << 64);
        assert_eq!(bytes_of(&[], 4), 4);
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(4 << 40), "4.00 TiB");
        assert_eq!(human_bytes(3 << 19), "1.50 MiB");
    }

    #[test]
    fn needs_beyond_the_machine_are_refused() {
        let mut need = MemoryNeed::new();
        need.add("parameters", 4_000_000_000_000 * 4);
        need.add("the arena", 1 << 20);
        let e = need.check("training").unwrap_err().to_string();
        assert!(e.contains("14.55 TiB for parameters"), "{e}");
        let mut small = MemoryNeed::new();
        small.add("parameters", 1024);
        small.check("training").unwrap();
        assert!(try_filled(usize::MAX / 8, 0u64).is_err());
    }
}
