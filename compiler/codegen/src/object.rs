//! Object files for static libraries (placeholder, filled in below).
