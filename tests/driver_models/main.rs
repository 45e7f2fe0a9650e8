//! Manufacturer driver models against the reference corpus, one module per vendor
//! group: each decodes real corpus telegrams and compares named fields with the
//! reference decoder's values, read from the corpus at test time.

mod corpus;

mod apator;
mod catalogue_l_z;
mod diehl;
mod engelmann;
mod kamstrup;
mod qundis;
mod techem;
mod techem_legacy;
mod vendor_security;
