//! What the `virtio-drivers` crate needs from the platform: its `Hal` (DMA memory from the
//! frame allocator, buffers translated to physical addresses, device windows through the
//! direct map) and PCI configuration access, so a driver gets a ready `PciTransport` for
//! a device found at boot with [`pci_transport`].
//!
//! x86 DMA is cache coherent: sharing a buffer is an address translation, never a copy.

use core::ptr::NonNull;

use pci_types::{ConfigRegionAccess, PciAddress};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::{BufferDirection, Hal};

use crate::paging::{phys_to_virt, virt_to_phys};
use crate::{frames, kspace, pci};

/// The platform's `virtio_drivers::Hal`.
pub struct VirtioHal;

fn order_of(pages: usize) -> usize {
    pages.max(1).next_power_of_two().trailing_zeros() as usize
}

/// The physical address of kernel virtual address `virt`: the direct map by arithmetic,
/// anything else through the page tables.
pub fn kernel_virt_to_phys(virt: u64) -> Option<u64> {
    virt_to_phys(virt).or_else(|| {
        kspace::with_kernel_space(|space| {
            space.translate(x86_64::VirtAddr::new(virt)).map(|t| t.phys.as_u64())
        })
    })
}

// SAFETY: DMA memory comes from the frame allocator (contiguous, aligned, zeroed here,
// owned by the driver until dealloc), is direct mapped and coherent; `share` returns the
// physical address of a buffer that the kernel maps contiguously (checked page by page).
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (u64, NonNull<u8>) {
        let Some(phys) = frames::alloc_frames(order_of(pages)) else {
            crate::early_panic("out of memory for virtio queues (DMA)");
        };
        let virt = phys_to_virt(phys) as *mut u8;
        // SAFETY: fresh frames, direct mapped, `pages` pages long (or more).
        unsafe { core::ptr::write_bytes(virt, 0, pages * 4096) };
        (phys, NonNull::new(virt).expect("the direct map is not at 0"))
    }

    unsafe fn dma_dealloc(paddr: u64, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        frames::free_frames(paddr, order_of(pages));
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: u64, _size: usize) -> NonNull<u8> {
        NonNull::new(phys_to_virt(paddr) as *mut u8).expect("the direct map is not at 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> u64 {
        let start = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len() as u64;
        let Some(phys) = kernel_virt_to_phys(start) else {
            crate::early_panic("a virtio buffer is not mapped");
        };
        // Every page of the buffer must follow the first one physically.
        let mut page = (start & !0xfff) + 0x1000;
        while page < start + len {
            if kernel_virt_to_phys(page) != Some(phys + (page - start)) {
                crate::early_panic("a virtio buffer is not physically contiguous");
            }
            page += 0x1000;
        }
        phys
    }

    unsafe fn unshare(_paddr: u64, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The platform's PCI configuration access, in `virtio-drivers`' terms.
pub struct VirtioPciAccess;

fn address(df: DeviceFunction) -> PciAddress {
    PciAddress::new(0, df.bus, df.device, df.function)
}

impl ConfigurationAccess for VirtioPciAccess {
    fn read_word(&self, df: DeviceFunction, register_offset: u8) -> u32 {
        // SAFETY: configuration space of a function the driver found at boot.
        unsafe { pci::config_access().read(address(df), register_offset as u16) }
    }

    fn write_word(&mut self, df: DeviceFunction, register_offset: u8, data: u32) {
        // SAFETY: as above; the driver owns the device it writes to.
        unsafe { pci::config_access().write(address(df), register_offset as u16, data) }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        VirtioPciAccess
    }
}

/// A virtio PCI transport for `device` (found at boot; BARs assigned).
pub fn pci_transport(
    device: &pci::PciDevice,
) -> Result<PciTransport, virtio_drivers::transport::pci::VirtioPciError> {
    let mut root = PciRoot::new(VirtioPciAccess);
    let df = DeviceFunction {
        bus: device.address.bus(),
        device: device.address.device(),
        function: device.address.function(),
    };
    PciTransport::new::<VirtioHal, _>(&mut root, df)
}
