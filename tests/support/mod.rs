//! Helpers shared by integration tests.
#![allow(dead_code)]

pub mod billing;
pub mod bus_pty;
pub mod daemon;
pub mod mosquitto;
pub mod postgres;
pub mod sim;
pub mod subscriber;
pub mod telegrams;
