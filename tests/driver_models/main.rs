//! Manufacturer driver models against the reference corpus, one module per vendor
//! group: each decodes real corpus telegrams and compares named fields with the
//! reference decoder's values, read from the corpus at test time.

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
