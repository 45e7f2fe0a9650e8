//! Helpers shared by integration tests.
#![allow(dead_code)]

pub mod billing;
pub mod daemon;
pub mod mosquitto;
pub mod postgres;
pub mod subscriber;
pub mod telegrams;
