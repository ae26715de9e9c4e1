//! ACPI: finds the RSDP (from the start info, else by searching the BIOS area) and reads
//! the MADT (processors, I/O APICs) and the MCFG (the PCI Express ECAM window) through the
//! `acpi` crate. Owns nothing after boot but the summary it returns.

use core::fmt;
use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

use crate::paging::phys_to_virt;

/// ACPI tables are reached through the direct map: nothing to map or unmap.
#[derive(Clone, Copy)]
struct DirectMapHandler;

impl AcpiHandler for DirectMapHandler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = NonNull::new(phys_to_virt(phys as u64) as *mut T)
            .unwrap_or_else(|| crate::early_panic("ACPI asked to map a null address"));
        // SAFETY: the direct map covers all RAM (and the BIOS area) at a fixed offset;
        // the mapping outlives every table reference.
        unsafe { PhysicalMapping::new(phys, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The PCI Express enhanced configuration window of one segment.
#[derive(Clone, Copy, Debug)]
pub struct Ecam {
    pub base: u64,
    pub segment: u16,
    pub bus_start: u8,
    pub bus_end: u8,
}

/// What the kernel learns from ACPI.
#[derive(Clone, Debug, Default)]
pub struct AcpiSummary {
    /// The RSDP address the loader gave, 0 when it was found by searching.
    pub rsdp: u64,
    pub processors: u32,
    pub io_apics: heapless::Vec<(u8, u32, u32), 4>,
    pub ecam: Option<Ecam>,
}

/// Why ACPI could not be read.
pub struct AcpiFailure(acpi::AcpiError);

impl fmt::Display for AcpiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ACPI tables unreadable: {:?}", self.0)
    }
}

pub fn read(rsdp: Option<u64>) -> Result<AcpiSummary, AcpiFailure> {
    // SAFETY: the RSDP address comes from the loader (or the search of the BIOS area done
    // by the crate through the direct map); the tables it points to are firmware memory.
    let tables = unsafe {
        match rsdp {
            Some(addr) => AcpiTables::from_rsdp(DirectMapHandler, addr as usize),
            None => AcpiTables::search_for_rsdp_bios(DirectMapHandler),
        }
    }
    .map_err(AcpiFailure)?;
    let mut summary = AcpiSummary { rsdp: rsdp.unwrap_or(0), ..Default::default() };
    if let Ok(madt) = tables.find_table::<Madt>() {
        for entry in madt.get().entries() {
            match entry {
                MadtEntry::LocalApic(e) if e.flags & 1 != 0 => summary.processors += 1,
                MadtEntry::LocalX2Apic(e) if e.flags & 1 != 0 => summary.processors += 1,
                MadtEntry::IoApic(e) => {
                    let _ = summary.io_apics.push((
                        e.io_apic_id,
                        e.io_apic_address,
                        e.global_system_interrupt_base,
                    ));
                }
                _ => {}
            }
        }
    }
    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        summary.ecam = mcfg.entries().iter().find(|e| e.pci_segment_group == 0).map(|e| Ecam {
            base: e.base_address,
            segment: e.pci_segment_group,
            bus_start: e.bus_number_start,
            bus_end: e.bus_number_end,
        });
    }
    Ok(summary)
}
