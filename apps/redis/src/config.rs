//! The server's settings, as the image config (`apps/redis/Config.toml`) or the Linux
//! command line give them.
//!
//! Owns [`ServerConfig`] and its defaults (Redis's where Redis has one). It reads no file
//! and no environment: the image's glue or `redis-linux` fills it in.

use alloc::string::String;

use crate::resp::Limits;

/// Everything the server is told at start.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// TCP port to listen on.
    pub port: u16,
    /// Connections served at once; one more is refused with Redis's
    /// `-ERR max number of clients reached`.
    pub maxclients: usize,
    /// Request limits (`max_bulk` is also the longest string APPEND may build).
    pub limits: Limits,
    /// Largest list node, header included (a bigger element gets a node of its own).
    pub list_node_bytes: usize,
    /// Expiry sweeps per second (Redis's `hz`).
    pub hz: u32,
    /// Most expired keys one sweep removes.
    pub sweep_budget: usize,
    /// Writes the lines of INFO's `# Remora` section (`name:value\r\n` each): the image
    /// puts the pager's and the prefetcher's counters there. `None`: no such section.
    pub remora_info: Option<fn(&mut String)>,
}

impl ServerConfig {
    /// Milliseconds between two expiry sweeps.
    pub fn sweep_interval_ms(&self) -> u64 {
        1000 / u64::from(self.hz.clamp(1, 500))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 6379,
            maxclients: 1000,
            limits: Limits::default(),
            list_node_bytes: 8 * 1024,
            hz: 10,
            sweep_budget: 200,
            remora_info: None,
        }
    }
}
