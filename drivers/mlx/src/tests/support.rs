//! Helpers shared by the tests: a model, a device brought up on it, a connected
//! transport, patterned buffers and a loop that waits for completions.

use alloc::vec::Vec;

use remora_rmem::{Completion, LocalBuf, Transport};

use crate::model::{Model, ModelBar, ModelClock, ModelConfig, ModelDma};
use crate::transport::{QpConfig, RegionRequest};
use crate::{Device, DeviceConfig, Error, Mlx5Transport};

pub type ModelDevice = Device<ModelBar, ModelDma, ModelClock>;
pub type ModelTransport = Mlx5Transport<ModelBar, ModelDma, ModelClock>;

pub const KEY: [u8; 16] = *b"remora-mlx5-test";
pub const REGION: u64 = 8 << 20;
pub const IP: [u8; 4] = [10, 0, 0, 2];

pub fn device_config() -> DeviceConfig {
    DeviceConfig { command_timeout_ms: 50, firmware_timeout_ms: 50, ip: IP }
}

pub fn bring_up(model: &Model) -> Result<ModelDevice, Error> {
    Device::bring_up(model.bar(), model.dma(), model.clock(), device_config())
}

pub fn qp_config(depth: u32) -> QpConfig {
    QpConfig { queue_depth: depth, cq_size: depth, ..QpConfig::default() }
}

pub fn connect_with(model: &Model, qp: QpConfig) -> Result<ModelTransport, Error> {
    let dev = bring_up(model)?;
    Mlx5Transport::connect(dev, qp, RegionRequest { key: KEY, size: REGION }, &mut model.control())
}

pub fn connect(model: &Model, depth: u32) -> ModelTransport {
    connect_with(model, qp_config(depth)).expect("connect")
}

/// A model with the default configuration.
pub fn model() -> Model {
    Model::new(ModelConfig::default())
}

/// The byte pattern of page `page` in generation `generation`.
pub fn pattern(page: u64, generation: u32) -> Vec<u8> {
    let mut x = page.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (generation as u64) << 32 | 1;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Polls until a completion comes (panics after many empty polls).
pub fn wait(t: &mut impl Transport) -> Completion {
    for _ in 0..100_000 {
        if let Some(c) = t.poll() {
            return c;
        }
    }
    panic!("no completion: {} in flight", t.in_flight());
}

/// Polls every completion of the requests in flight.
pub fn drain(t: &mut impl Transport) -> Vec<Completion> {
    let mut done = Vec::new();
    while t.in_flight() > 0 {
        done.push(wait(t));
    }
    done
}

/// Fills `buf` with `data`.
pub fn fill(buf: &mut LocalBuf, data: &[u8]) {
    buf.as_mut_slice()[..data.len()].copy_from_slice(data);
}
