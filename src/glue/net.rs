//! The application's network: the virtio-net card that is not the far-memory one (the one
//! at `net.nic=bb:dd.f`, else the first other virtio-net device), smoltcp on it, with the
//! address from the configuration.

use alloc::boxed::Box;
use remora_kvm::format::Mac;
use remora_kvm::virtio_net::VirtioNet;
use remora_kvm::{BootInfo, pci, time, virtio};
use remora_net::{Addressing, NetConfig, Nic};

use crate::config;

/// The card as the stack's `Nic`.
struct AppNic(VirtioNet);

impl Nic for AppNic {
    fn mac(&self) -> [u8; 6] {
        self.0.mac()
    }

    fn can_send(&mut self) -> bool {
        self.0.can_send()
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        self.0.send(frame).is_ok()
    }

    fn receive_into(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.0.receive(|frame| {
            let n = frame.len().min(buf.len());
            buf[..n].copy_from_slice(&frame[..n]);
            n
        })
    }
}

fn parse_ipv4(text: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = text.split('.');
    for byte in &mut out {
        *byte = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn addressing(boot: &BootInfo) -> Addressing {
    let ip = boot.cmdline.get("net.ip").unwrap_or(config::net::IP);
    if ip == "dhcp" {
        return Addressing::Dhcp;
    }
    let (address, prefix) = ip.split_once('/').unwrap_or((ip, "24"));
    let (Some(address), Ok(prefix)) = (parse_ipv4(address), prefix.parse::<u8>()) else {
        remora_kvm::early_panic(
            "net.ip must be an IPv4 address with a prefix (10.0.2.15/24) or \"dhcp\"",
        );
    };
    let gateway = boot.cmdline.get("net.gateway").unwrap_or(config::net::GATEWAY);
    let gateway = match gateway {
        "" => None,
        text => Some(parse_ipv4(text).unwrap_or_else(|| {
            remora_kvm::early_panic("net.gateway must be an IPv4 address or empty")
        })),
    };
    Addressing::Static { address, prefix: prefix.min(32), gateway }
}

fn pause(ms: u64) {
    if ms == 0 {
        remora_sched::yield_now();
    } else {
        remora_sched::sleep(core::time::Duration::from_millis(ms));
    }
}

pub fn init(boot: &'static BootInfo) {
    let far_nic = boot.cmdline.get("rmem.nic");
    let wanted = boot.cmdline.get("net.nic");
    let nic = pci::devices().iter().filter(|d| d.is_virtio_net()).find(|d| match wanted {
        Some(w) => d.bdf() == w,
        None => Some(d.bdf().as_str()) != far_nic,
    });
    let Some(nic) = nic else {
        log::warn!(
            "net: no network card for the application (cargo xtask run adds one); networking is off"
        );
        return;
    };
    let device =
        virtio::pci_transport(nic).ok().and_then(|t| VirtioNet::new(t).ok()).unwrap_or_else(|| {
            remora_kvm::early_panic("the application's network card could not be started")
        });
    let config = NetConfig {
        addressing: addressing(boot),
        rx_buffer: config::net::RX_BUFFER,
        tx_buffer: config::net::TX_BUFFER,
        backlog: config::net::BACKLOG as usize,
    };
    let mac = Mac(device.mac());
    remora_net::init(Box::new(AppNic(device)), config, time::now_ns, pause);
    log::info!("net: {} mac {mac}, {:?}", nic.bdf(), config.addressing);
}
