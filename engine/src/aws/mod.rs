//! What calling AWS services needs beyond HTTP: request signing (`sigv4`).

pub mod sigv4;
