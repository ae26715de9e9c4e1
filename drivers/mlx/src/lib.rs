//! The mlx5 driver (being written).
#![cfg_attr(not(test), no_std)]
