//! Host tests of the driver against the device model: bring-up and teardown, the command
//! interface's rules and error paths, the data path over thousands of operations, and the
//! error completions.

mod bringup;
mod commands;
mod datapath;
mod errors;
mod support;
