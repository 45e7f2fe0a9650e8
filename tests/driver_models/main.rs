//! Manufacturer driver models against the reference corpus, one module per vendor
//! group: each decodes real corpus telegrams and compares named fields with the
//! reference decoder's values, read from the corpus at test time.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

mod corpus;

mod apator;
mod catalogue_a_k;
mod catalogue_l_z;
mod catalogue_more;
mod compact_profiles;
mod diehl;
mod engelmann;
mod generated;
mod kamstrup;
mod qundis;
mod techem;
mod techem_legacy;
mod vendor_security;
