//! Passing a ConnectX NIC through to the image with vfio-pci, for `cargo xtask run
//! --transport mlx5 --vfio <PCI address>`: checks on the host that the device exists, is
//! a Mellanox function bound to vfio-pci, sits in a usable IOMMU group, and that the
//! group's device node is accessible; then gives QEMU's arguments. Every failure says
//! what to run to fix it.
//!
//! This module owns only those checks and arguments; it never binds or unbinds a
//! device itself (that needs root and is the user's decision).
//!
//! The mlx5 path is tested against the driver's device model, not yet on hardware.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Mellanox's PCI vendor id.
const MELLANOX: u16 = 0x15b3;

/// QEMU arguments that pass the NIC at `pci_address` (`0000:41:00.0` or `41:00.0`)
/// through to the guest.
pub fn qemu_args(pci_address: &str) -> Result<Vec<String>> {
    qemu_args_in(Path::new("/"), pci_address)
}

/// [`qemu_args`] with `root` standing for `/` (for tests).
pub fn qemu_args_in(root: &Path, pci_address: &str) -> Result<Vec<String>> {
    let address = normalize(pci_address)?;
    let device = root.join("sys/bus/pci/devices").join(&address);
    if !device.exists() {
        bail!("no PCI device {address} on this host (`lspci -D -d 15b3:` lists the Mellanox ones)");
    }
    let vendor = read_hex(&device.join("vendor"))?;
    if vendor != MELLANOX {
        bail!(
            "{address} is not a Mellanox device (vendor {vendor:#06x}); --transport mlx5 needs a \
             ConnectX-4 or later (`lspci -D -d 15b3:`)"
        );
    }
    let driver = link_name(&device.join("driver"));
    if driver.as_deref() != Some("vfio-pci") {
        let bound = match &driver {
            Some(d) => format!("bound to {d}"),
            None => "bound to no driver".to_string(),
        };
        let unbind = if driver.is_some() {
            format!("  echo {address} > /sys/bus/pci/devices/{address}/driver/unbind\n")
        } else {
            String::new()
        };
        bail!(
            "{address} is {bound}, not vfio-pci; bind it (as root) with:\n  modprobe vfio-pci\n\
             {unbind}  echo vfio-pci > /sys/bus/pci/devices/{address}/driver_override\n  \
             echo {address} > /sys/bus/pci/drivers_probe\n(or `driverctl set-override {address} \
             vfio-pci`); the host loses the port while the image uses it"
        );
    }
    let Some(group) = link_name(&device.join("iommu_group")) else {
        bail!(
            "{address} is in no IOMMU group: enable the IOMMU on the host (intel_iommu=on or \
             amd_iommu=on on the kernel command line) and reboot"
        );
    };
    let members = root.join("sys/kernel/iommu_groups").join(&group).join("devices");
    if let Ok(entries) = std::fs::read_dir(&members) {
        let mut busy = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let drv = link_name(&root.join("sys/bus/pci/devices").join(&name).join("driver"));
            if let Some(d) = drv
                && d != "vfio-pci"
                && d != "pcieport"
            {
                busy.push(format!("{name} ({d})"));
            }
        }
        if !busy.is_empty() {
            busy.sort();
            bail!(
                "IOMMU group {group} of {address} also holds {}: bind every device of the group \
                 to vfio-pci (or unbind it) before passing {address} through",
                busy.join(", ")
            );
        }
    }
    let node = root.join("dev/vfio").join(&group);
    if !node.exists() {
        bail!(
            "{} does not exist: is the vfio-pci module loaded (`modprobe vfio-pci`)?",
            show(root, &node)
        );
    }
    std::fs::OpenOptions::new().read(true).write(true).open(&node).with_context(|| {
        format!(
            "cannot open {} (run as root, or `chown $USER {}`; QEMU also needs `ulimit -l` \
             above the guest's memory to pin it)",
            show(root, &node),
            show(root, &node)
        )
    })?;
    Ok(vec!["-device".to_string(), format!("vfio-pci,host={address}")])
}

/// `0000:41:00.0` from `41:00.0` or `0000:41:00.0`, checked.
fn normalize(text: &str) -> Result<String> {
    let full =
        if text.matches(':').count() == 1 { format!("0000:{text}") } else { text.to_string() };
    let bad = || {
        anyhow::anyhow!(
            "'{text}' is not a PCI address like 0000:41:00.0 (domain:bus:device.function, as \
             `lspci -D` prints it)"
        )
    };
    let (rest, function) = full.rsplit_once('.').ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let ok = parts.len() == 3
        && hex(parts[0], 4)
        && hex(parts[1], 2)
        && hex(parts[2], 2)
        && u8::from_str_radix(parts[2], 16).is_ok_and(|d| d < 32)
        && function.len() == 1
        && function.chars().all(|c| ('0'..='7').contains(&c));
    if !ok {
        return Err(bad());
    }
    Ok(full.to_ascii_lowercase())
}

/// The last component of the symlink at `path`, if it is one.
fn link_name(path: &Path) -> Option<String> {
    let target: PathBuf = std::fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

fn read_hex(path: &Path) -> Result<u16> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let t = text.trim();
    u16::from_str_radix(t.trim_start_matches("0x"), 16)
        .with_context(|| format!("{} holds '{t}', not a hex id", path.display()))
}

/// `path` as the user would type it (without the test root).
fn show(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake `/` with one PCI device; removed on drop.
    struct Host(PathBuf);

    impl Host {
        fn new(name: &str) -> Self {
            let root =
                std::env::temp_dir().join(format!("remora-vfio-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
            std::fs::create_dir_all(root.join("sys/bus/pci/drivers/vfio-pci")).unwrap();
            std::fs::create_dir_all(root.join("sys/bus/pci/drivers/mlx5_core")).unwrap();
            std::fs::create_dir_all(root.join("dev/vfio")).unwrap();
            Host(root)
        }

        fn device(&self, address: &str, vendor: &str, driver: Option<&str>, group: Option<&str>) {
            let dev = self.0.join("sys/bus/pci/devices").join(address);
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::write(dev.join("vendor"), format!("{vendor}\n")).unwrap();
            if let Some(d) = driver {
                symlink(self.0.join("sys/bus/pci/drivers").join(d), dev.join("driver")).unwrap();
            }
            if let Some(g) = group {
                let gdir = self.0.join("sys/kernel/iommu_groups").join(g);
                std::fs::create_dir_all(gdir.join("devices")).unwrap();
                symlink(&gdir, dev.join("iommu_group")).unwrap();
                symlink(&dev, gdir.join("devices").join(address)).unwrap();
            }
        }

        fn node(&self, group: &str) {
            std::fs::write(self.0.join("dev/vfio").join(group), b"").unwrap();
        }
    }

    impl Drop for Host {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn err(host: &Host, address: &str) -> String {
        format!("{:#}", qemu_args_in(&host.0, address).unwrap_err())
    }

    #[test]
    fn a_bound_device_gives_the_qemu_arguments() {
        let host = Host::new("ok");
        host.device("0000:41:00.0", "0x15b3", Some("vfio-pci"), Some("17"));
        host.node("17");
        let args = qemu_args_in(&host.0, "41:00.0").unwrap();
        assert_eq!(args, ["-device", "vfio-pci,host=0000:41:00.0"]);
    }

    #[test]
    fn each_problem_says_how_to_fix_it() {
        let host = Host::new("errors");
        assert!(err(&host, "41:00").contains("is not a PCI address"));
        assert!(err(&host, "0000:41:00.0").contains("no PCI device 0000:41:00.0"));
        host.device("0000:01:00.0", "0x8086", Some("vfio-pci"), Some("1"));
        assert!(err(&host, "01:00.0").contains("not a Mellanox device"));
        host.device("0000:41:00.0", "0x15b3", Some("mlx5_core"), Some("17"));
        let e = err(&host, "0000:41:00.0");
        assert!(e.contains("bound to mlx5_core, not vfio-pci"), "{e}");
        assert!(
            e.contains("echo vfio-pci > /sys/bus/pci/devices/0000:41:00.0/driver_override"),
            "{e}"
        );
        assert!(e.contains("driver/unbind"), "{e}");
        host.device("0000:42:00.0", "0x15b3", Some("vfio-pci"), None);
        assert!(err(&host, "0000:42:00.0").contains("no IOMMU group"));
        host.device("0000:43:00.0", "0x15b3", Some("vfio-pci"), Some("20"));
        host.device("0000:43:00.1", "0x15b3", Some("mlx5_core"), None);
        std::os::unix::fs::symlink(
            host.0.join("sys/bus/pci/devices/0000:43:00.1"),
            host.0.join("sys/kernel/iommu_groups/20/devices/0000:43:00.1"),
        )
        .unwrap();
        let e = err(&host, "0000:43:00.0");
        assert!(e.contains("also holds 0000:43:00.1 (mlx5_core)"), "{e}");
        host.device("0000:44:00.0", "0x15b3", Some("vfio-pci"), Some("21"));
        assert!(err(&host, "0000:44:00.0").contains("/dev/vfio/21 does not exist"));
    }
}
