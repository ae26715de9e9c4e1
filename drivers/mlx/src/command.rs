//! The command queue: one page of entries, a chain of mailbox blocks per command for what
//! does not fit inline, tokens, the doorbell, and decoding of the result into a
//! [`CmdError`] that names the opcode and syndrome.
//!
//! Two slots are used. Slot 0 carries every regular command; the last slot is reserved
//! for MANAGE_PAGES answers to page requests that firmware raises while a regular command
//! is outstanding (Linux's `max_reg_cmds`, rdma-core's slot 31). Waiting is the caller's
//! (the [`crate::Device`] polls both the entry and its event queue).
//!
//! This module owns the queue page and the mailbox pages. It never waits, never reads
//! the event queue, and never interprets a command's output beyond its header.

use alloc::vec::Vec;

use zerocopy::{FromBytes, FromZeros, IntoBytes};

use crate::be::{Be32, Be64};
use crate::error::{CmdError, CmdFailure};
use crate::hw::cmd::{
    CmdEntry, CmdStatus, DeliveryStatus, INLINE_LEN, MAILBOX_DATA_LEN, Mailbox, OWNER_HW, Opcode,
    OutHeader,
};
use crate::hw::init_seg::reg;
use crate::platform::{Bar, Dma, DmaError, PAGE_SIZE};

/// Which slot a command goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Slot 0: every regular command.
    Regular,
    /// The last slot: answers to page requests only.
    Reserved,
}

/// The command queue.
pub(crate) struct CommandQueue {
    /// Physical address of the queue page.
    page: u64,
    /// Entries in the queue.
    slots: usize,
    /// Bytes between entries.
    stride: usize,
    /// The last token used (never 0).
    token: u8,
    /// Mailbox pages of each used slot, grown on demand: [regular, reserved].
    boxes: [Vec<u64>; 2],
}

/// Mailbox blocks needed for `len` message bytes (the first 16 go inline).
pub(crate) fn blocks_for(len: usize) -> usize {
    len.saturating_sub(INLINE_LEN).div_ceil(MAILBOX_DATA_LEN)
}

impl CommandQueue {
    /// Allocates the queue page for `1 << log_size` entries of `1 << log_stride` bytes.
    pub fn new(dma: &impl Dma, log_size: u32, log_stride: u32) -> Result<Self, DmaError> {
        let page = dma.alloc(1)?;
        Ok(CommandQueue {
            page,
            slots: 1 << log_size,
            stride: 1 << log_stride,
            token: 0,
            boxes: [Vec::new(), Vec::new()],
        })
    }

    /// Physical address of the queue page (for cmdq_addr).
    pub fn page(&self) -> u64 {
        self.page
    }

    /// Whether a reserved slot distinct from the regular one exists.
    pub fn has_reserved_slot(&self) -> bool {
        self.slots >= 2
    }

    fn index(&self, slot: Slot) -> usize {
        match slot {
            Slot::Regular => 0,
            Slot::Reserved => self.slots - 1,
        }
    }

    fn entry_phys(&self, slot: Slot) -> u64 {
        self.page + (self.index(slot) * self.stride) as u64
    }

    fn next_token(&mut self) -> u8 {
        self.token = self.token.wrapping_add(1);
        if self.token == 0 {
            self.token = 1;
        }
        self.token
    }

    /// Makes sure `slot` has at least `n` mailbox pages.
    fn reserve_boxes(&mut self, dma: &impl Dma, slot: Slot, n: usize) -> Result<(), DmaError> {
        let pool = &mut self.boxes[slot as usize];
        while pool.len() < n {
            pool.push(dma.alloc(1)?);
        }
        Ok(())
    }

    /// Writes a chain of blocks on `pages` carrying `data` (empty for an output chain of
    /// `count` blocks). Returns the first block's address, or 0 for no blocks.
    fn write_chain(dma: &impl Dma, pages: &[u64], data: &[u8], count: usize, token: u8) -> u64 {
        for i in 0..count {
            let mut block = Mailbox::new_zeroed();
            let from = i * MAILBOX_DATA_LEN;
            if from < data.len() {
                let to = (from + MAILBOX_DATA_LEN).min(data.len());
                block.data[..to - from].copy_from_slice(&data[from..to]);
            }
            block.next = Be64::new(if i + 1 < count { pages[i + 1] } else { 0 });
            block.block_num = Be32::new(i as u32);
            block.token = token;
            dma.write(pages[i], block.as_bytes());
        }
        if count == 0 { 0 } else { pages[0] }
    }

    /// Fills `slot` with a command of `input` bytes expecting `out_len` output bytes and
    /// rings the doorbell. The slot must be free.
    pub fn post(
        &mut self,
        bar: &impl Bar,
        dma: &impl Dma,
        slot: Slot,
        input: &[u8],
        out_len: usize,
    ) -> Result<(), DmaError> {
        let in_blocks = blocks_for(input.len());
        let out_blocks = blocks_for(out_len);
        self.reserve_boxes(dma, slot, in_blocks + out_blocks)?;
        let token = self.next_token();
        let pages = &self.boxes[slot as usize];
        let tail = input.get(INLINE_LEN..).unwrap_or(&[]);
        let in_box = Self::write_chain(dma, &pages[..in_blocks], tail, in_blocks, token);
        let out_box = Self::write_chain(dma, &pages[in_blocks..], &[], out_blocks, token);
        let entry = CmdEntry::new(input, out_len as u32, in_box, out_box, token);
        dma.write(self.entry_phys(slot), entry.as_bytes());
        // The entry and its mailboxes must be in memory before the device looks.
        bar.write_barrier();
        bar.write32(reg::CMD_DBELL, 1 << self.index(slot));
        Ok(())
    }

    /// Whether the device has handed `slot` back.
    pub fn is_done(&self, dma: &impl Dma, slot: Slot) -> bool {
        let status_own = dma.read_u8(self.entry_phys(slot) + 0x3f);
        status_own & OWNER_HW == 0
    }

    /// Reads the result of the command in `slot` (after [`CommandQueue::is_done`] and a
    /// read barrier): the whole output, or the error it reports.
    pub fn finish(
        &self,
        dma: &impl Dma,
        slot: Slot,
        opcode: Opcode,
        op_mod: u16,
        out_len: usize,
    ) -> Result<Vec<u8>, CmdError> {
        let fail = |failure| CmdError { opcode, op_mod, failure };
        let mut raw = [0u8; 64];
        dma.read(self.entry_phys(slot), &mut raw);
        let entry = CmdEntry::read_from_bytes(&raw).expect("64 bytes");
        let delivery = entry.delivery_status();
        if delivery != DeliveryStatus::OK {
            return Err(fail(CmdFailure::Delivery(delivery)));
        }
        let mut out = alloc::vec![0u8; out_len.max(INLINE_LEN)];
        out[..INLINE_LEN].copy_from_slice(&entry.output_inline);
        let in_blocks = blocks_for(entry.input_len.get() as usize);
        let pages = &self.boxes[slot as usize];
        for i in 0..blocks_for(out_len) {
            let from = INLINE_LEN + i * MAILBOX_DATA_LEN;
            let to = (from + MAILBOX_DATA_LEN).min(out_len);
            dma.read(pages[in_blocks + i], &mut out[from..to]);
        }
        out.truncate(out_len.max(INLINE_LEN));
        let (hdr, _) = OutHeader::read_from_prefix(&out).expect("16 bytes at least");
        if hdr.status != CmdStatus::OK.0 {
            return Err(fail(CmdFailure::Status {
                status: CmdStatus(hdr.status),
                syndrome: hdr.syndrome.get(),
            }));
        }
        Ok(out)
    }

    /// Gives back the queue page and every mailbox page.
    pub fn free(self, dma: &impl Dma) {
        for pool in &self.boxes {
            for &p in pool {
                dma.free(p, 1);
            }
        }
        dma.free(self.page, 1);
    }
}

const _: () = assert!(core::mem::size_of::<Mailbox>() <= PAGE_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_counts() {
        assert_eq!(blocks_for(0x10), 0);
        assert_eq!(blocks_for(0x11), 1);
        assert_eq!(blocks_for(0x1010), 8);
        assert_eq!(blocks_for(0x110), 1);
        assert_eq!(blocks_for(0x210), 1);
        assert_eq!(blocks_for(0x211), 2);
    }
}
