//! The reference interpreter (in progress).
