//! Registers inside a UAR (user access region) page: the doorbells of CQs, EQs and send
//! queues (rdma-core `mlx5.h`). UAR index `n` is the 4 KiB page at BAR0 + `n * 4096`
//! (with `log_uar_page_sz` = 0, which bring-up sets).

/// Bytes of a UAR page.
pub const UAR_PAGE_SIZE: usize = 4096;
/// CQ doorbell (64-bit): arm requests.
pub const CQ_DOORBELL: usize = 0x20;
/// EQ doorbell: update the consumer index and arm.
pub const EQ_ARM: usize = 0x40;
/// EQ doorbell: update the consumer index only.
pub const EQ_UPDATE_CI: usize = 0x48;
/// Send doorbell / first BlueFlame buffer.
pub const BLUEFLAME: usize = 0x800;

/// BAR0 offset of register `reg` of UAR `index`.
pub const fn offset(index: u32, reg: usize) -> usize {
    index as usize * UAR_PAGE_SIZE + reg
}
