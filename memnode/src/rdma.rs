//! The memory node's RDMA side (cargo feature `rdma`): regions registered with
//! libibverbs and served to mlx5 images by RDMA READ and WRITE, which the node's CPU
//! never sees. Per image it keeps one registered region and one RC queue pair connected
//! to the image's.
//!
//! The connection is made over the control link: the image broadcasts a
//! [`ConnectRequest`] (its QPN, first PSN, GID, MAC, MTU, READ depth, region key and size)
//! in an Ethernet frame of EtherType 0x88B6 on the same socket as the far-memory link;
//! [`RdmaServer::handle_frame`] registers the region (once per key), creates a queue pair,
//! moves it INIT → RTR → RTS towards the image and answers with a [`ConnectReply`] (its
//! QPN, PSN, GID, MAC, rkey and the region's address). A repeated request is answered
//! again without new resources; a request from a new queue pair for a known key keeps
//! the region's contents and replaces the queue pair.
//!
//! The verbs are declared by hand (`extern "C"`, linked against libibverbs; build with
//! Debian's `libibverbs-dev`): only the handful used, with the structure layouts of
//! rdma-core's `verbs.h` checked at compile time.
//!
//! This module owns the verbs resources and their lifetime. It never touches region
//! memory itself and never posts work requests: the node is only a responder.
//!
//! RoCE v2 needs the image's MAC in the node's neighbour table (the image answers no
//! ARP): each accepted connection prints the `ip neigh` command that adds it.

#![allow(unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int};
use std::fmt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use remora_mlx5::exchange::{
    ConnectReply, ConnectRequest, REPLY_LEN, ReplyStatus, encode_frame, parse_frame,
};
use remora_mlx5::{Psn, Qpn, Rkey};

/// Raw libibverbs declarations (rdma-core `verbs.h`).
mod ffi {
    use std::ffi::{c_char, c_int, c_void};
    use std::mem::{offset_of, size_of};

    /// `struct ibv_device`, `ibv_context`, `ibv_pd`, `ibv_cq`: used through pointers only.
    #[repr(C)]
    pub struct Opaque {
        _private: [u8; 0],
    }

    /// `struct ibv_mr` (the fields the node reads, in their places).
    #[repr(C)]
    pub struct IbvMr {
        pub context: *mut Opaque,
        pub pd: *mut Opaque,
        pub addr: *mut c_void,
        pub length: usize,
        pub handle: u32,
        pub lkey: u32,
        pub rkey: u32,
    }

    /// The start of `struct ibv_qp`, up to `qp_num` and the fields after it.
    #[repr(C)]
    pub struct IbvQp {
        pub context: *mut Opaque,
        pub qp_context: *mut c_void,
        pub pd: *mut Opaque,
        pub send_cq: *mut Opaque,
        pub recv_cq: *mut Opaque,
        pub srq: *mut c_void,
        pub handle: u32,
        pub qp_num: u32,
        pub state: u32,
        pub qp_type: u32,
    }

    /// `struct ibv_qp_cap`.
    #[repr(C)]
    #[derive(Default)]
    pub struct IbvQpCap {
        pub max_send_wr: u32,
        pub max_recv_wr: u32,
        pub max_send_sge: u32,
        pub max_recv_sge: u32,
        pub max_inline_data: u32,
    }

    /// `struct ibv_qp_init_attr`.
    #[repr(C)]
    pub struct IbvQpInitAttr {
        pub qp_context: *mut c_void,
        pub send_cq: *mut Opaque,
        pub recv_cq: *mut Opaque,
        pub srq: *mut c_void,
        pub cap: IbvQpCap,
        pub qp_type: u32,
        pub sq_sig_all: c_int,
    }

    /// `struct ibv_global_route`.
    #[repr(C, align(8))]
    #[derive(Default)]
    pub struct IbvGlobalRoute {
        pub dgid: [u8; 16],
        pub flow_label: u32,
        pub sgid_index: u8,
        pub hop_limit: u8,
        pub traffic_class: u8,
    }

    /// `struct ibv_ah_attr`.
    #[repr(C, align(8))]
    #[derive(Default)]
    pub struct IbvAhAttr {
        pub grh: IbvGlobalRoute,
        pub dlid: u16,
        pub sl: u8,
        pub src_path_bits: u8,
        pub static_rate: u8,
        pub is_global: u8,
        pub port_num: u8,
    }

    /// `struct ibv_qp_attr`.
    #[repr(C, align(8))]
    #[derive(Default)]
    pub struct IbvQpAttr {
        pub qp_state: u32,
        pub cur_qp_state: u32,
        pub path_mtu: u32,
        pub path_mig_state: u32,
        pub qkey: u32,
        pub rq_psn: u32,
        pub sq_psn: u32,
        pub dest_qp_num: u32,
        pub qp_access_flags: c_int,
        pub cap: IbvQpCap,
        pub ah_attr: IbvAhAttr,
        pub alt_ah_attr: IbvAhAttr,
        pub pkey_index: u16,
        pub alt_pkey_index: u16,
        pub en_sqd_async_notify: u8,
        pub sq_draining: u8,
        pub max_rd_atomic: u8,
        pub max_dest_rd_atomic: u8,
        pub min_rnr_timer: u8,
        pub port_num: u8,
        pub timeout: u8,
        pub retry_cnt: u8,
        pub rnr_retry: u8,
        pub alt_port_num: u8,
        pub alt_timeout: u8,
        pub rate_limit: u32,
    }

    // Layouts as rdma-core 44 (Debian) compiles them on x86_64 and arm64.
    const _: () = assert!(size_of::<IbvMr>() == 48 && offset_of!(IbvMr, rkey) == 40);
    const _: () = assert!(offset_of!(IbvQp, qp_num) == 52);
    const _: () =
        assert!(size_of::<IbvQpInitAttr>() == 64 && offset_of!(IbvQpInitAttr, qp_type) == 52);
    const _: () =
        assert!(size_of::<IbvGlobalRoute>() == 24 && offset_of!(IbvGlobalRoute, sgid_index) == 20);
    const _: () = assert!(size_of::<IbvAhAttr>() == 32 && offset_of!(IbvAhAttr, port_num) == 30);
    const _: () = assert!(size_of::<IbvQpAttr>() == 144);
    const _: () =
        assert!(offset_of!(IbvQpAttr, ah_attr) == 56 && offset_of!(IbvQpAttr, pkey_index) == 120);
    const _: () = assert!(offset_of!(IbvQpAttr, max_dest_rd_atomic) == 127);
    const _: () = assert!(offset_of!(IbvQpAttr, rate_limit) == 136);

    pub const QPT_RC: u32 = 2;
    pub const QPS_INIT: u32 = 1;
    pub const QPS_RTR: u32 = 2;
    pub const QPS_RTS: u32 = 3;
    pub const ACCESS_LOCAL_WRITE: c_int = 1;
    pub const ACCESS_REMOTE_WRITE: c_int = 2;
    pub const ACCESS_REMOTE_READ: c_int = 4;
    pub const QP_STATE: c_int = 1 << 0;
    pub const QP_ACCESS_FLAGS: c_int = 1 << 3;
    pub const QP_PKEY_INDEX: c_int = 1 << 4;
    pub const QP_PORT: c_int = 1 << 5;
    pub const QP_AV: c_int = 1 << 7;
    pub const QP_PATH_MTU: c_int = 1 << 8;
    pub const QP_TIMEOUT: c_int = 1 << 9;
    pub const QP_RETRY_CNT: c_int = 1 << 10;
    pub const QP_RNR_RETRY: c_int = 1 << 11;
    pub const QP_RQ_PSN: c_int = 1 << 12;
    pub const QP_MAX_QP_RD_ATOMIC: c_int = 1 << 13;
    pub const QP_MIN_RNR_TIMER: c_int = 1 << 15;
    pub const QP_SQ_PSN: c_int = 1 << 16;
    pub const QP_MAX_DEST_RD_ATOMIC: c_int = 1 << 17;
    pub const QP_DEST_QPN: c_int = 1 << 20;

    #[link(name = "ibverbs")]
    unsafe extern "C" {
        pub fn ibv_get_device_list(num_devices: *mut c_int) -> *mut *mut Opaque;
        pub fn ibv_free_device_list(list: *mut *mut Opaque);
        pub fn ibv_get_device_name(device: *mut Opaque) -> *const c_char;
        pub fn ibv_open_device(device: *mut Opaque) -> *mut Opaque;
        pub fn ibv_close_device(context: *mut Opaque) -> c_int;
        pub fn ibv_alloc_pd(context: *mut Opaque) -> *mut Opaque;
        pub fn ibv_dealloc_pd(pd: *mut Opaque) -> c_int;
        pub fn ibv_reg_mr(
            pd: *mut Opaque,
            addr: *mut c_void,
            length: usize,
            access: c_int,
        ) -> *mut IbvMr;
        pub fn ibv_dereg_mr(mr: *mut IbvMr) -> c_int;
        pub fn ibv_create_cq(
            context: *mut Opaque,
            cqe: c_int,
            cq_context: *mut c_void,
            channel: *mut c_void,
            comp_vector: c_int,
        ) -> *mut Opaque;
        pub fn ibv_destroy_cq(cq: *mut Opaque) -> c_int;
        pub fn ibv_create_qp(pd: *mut Opaque, attr: *mut IbvQpInitAttr) -> *mut IbvQp;
        pub fn ibv_modify_qp(qp: *mut IbvQp, attr: *mut IbvQpAttr, mask: c_int) -> c_int;
        pub fn ibv_destroy_qp(qp: *mut IbvQp) -> c_int;
        pub fn ibv_query_gid(
            context: *mut Opaque,
            port: u8,
            index: c_int,
            gid: *mut [u8; 16],
        ) -> c_int;
    }
}

/// Most RDMA READs the node accepts outstanding per image.
const MAX_DEST_READS: u8 = 16;
/// Ack timeout exponent for the node's queue pairs (4.096 us << 14, about 67 ms).
const ACK_TIMEOUT: u8 = 14;

/// How the node reaches its RDMA device.
#[derive(Clone, Debug)]
pub struct RdmaConfig {
    /// The verbs device (`mlx5_0`, `rxe0`...), or `None` for the first one.
    pub device: Option<String>,
    /// Its port.
    pub port: u8,
    /// The GID index to use, or `None` for the first RoCE v2 IPv4 GID.
    pub gid_index: Option<u8>,
    /// Bytes all RDMA regions together may take.
    pub capacity: u64,
}

impl Default for RdmaConfig {
    fn default() -> Self {
        RdmaConfig { device: None, port: 1, gid_index: None, capacity: 1 << 30 }
    }
}

/// Zeroed, page-aligned memory for a region (committed by the kernel as it is touched).
struct RegionMemory {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl RegionMemory {
    fn new(size: u64) -> Result<Self> {
        let layout = Layout::from_size_align(size as usize, 4096).context("region size")?;
        // SAFETY: the layout has a non-zero size (checked by the caller).
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })
            .with_context(|| format!("cannot allocate a region of {size} bytes"))?;
        Ok(RegionMemory { ptr, layout })
    }
}

impl Drop for RegionMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; freed once, after deregistration
        // (the `Region` drops its MR first).
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// One image's region and the queue pair connected to it.
struct Region {
    qp: *mut ffi::IbvQp,
    mr: *mut ffi::IbvMr,
    /// The registered memory: kept while the MR lives, freed after it (fields drop after
    /// `Drop::drop` deregisters).
    _memory: RegionMemory,
    size: u64,
    /// The request the queue pair was made for and the reply given.
    request: ConnectRequest,
    reply: ConnectReply,
}

impl Region {
    fn destroy_qp(&mut self) {
        if !self.qp.is_null() {
            // SAFETY: a QP this node created and has not destroyed.
            if unsafe { ffi::ibv_destroy_qp(self.qp) } != 0 {
                eprintln!("memnode: rdma: ibv_destroy_qp: {}", std::io::Error::last_os_error());
            }
            self.qp = std::ptr::null_mut();
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.destroy_qp();
        // SAFETY: the MR registered over `memory`, deregistered once, before `memory`
        // is freed (fields drop after this body).
        if unsafe { ffi::ibv_dereg_mr(self.mr) } != 0 {
            eprintln!("memnode: rdma: ibv_dereg_mr: {}", std::io::Error::last_os_error());
        }
    }
}

/// The node's verbs resources and the regions it serves by RDMA.
pub struct RdmaServer {
    context: *mut ffi::Opaque,
    pd: *mut ffi::Opaque,
    cq: *mut ffi::Opaque,
    device: String,
    port: u8,
    gid_index: u8,
    gid: [u8; 16],
    mac: [u8; 6],
    capacity: u64,
    used: u64,
    regions: HashMap<[u8; 16], Region>,
}

// SAFETY: libibverbs objects may be used from any thread; the server is used by one at
// a time (`&mut self`), and owns every object it points to.
unsafe impl Send for RdmaServer {}

fn os_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", std::io::Error::last_os_error())
}

/// The IPv4 address of an IPv4-mapped GID (`::ffff:a.b.c.d`).
pub fn gid_ipv4(gid: &[u8; 16]) -> Option<[u8; 4]> {
    (gid[..10] == [0; 10] && gid[10..12] == [0xff, 0xff])
        .then(|| [gid[12], gid[13], gid[14], gid[15]])
}

/// A MAC address as sysfs prints it (`aa:bb:cc:dd:ee:ff`).
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The sysfs directory of `device`'s `port`.
fn port_dir(sysfs: &Path, device: &str, port: u8) -> PathBuf {
    sysfs.join("class/infiniband").join(device).join("ports").join(port.to_string())
}

/// Whether GID `index` is RoCE v2, and the MAC of its network device, from sysfs.
fn gid_attrs(sysfs: &Path, device: &str, port: u8, index: u8) -> (bool, Option<[u8; 6]>) {
    let dir = port_dir(sysfs, device, port).join("gid_attrs");
    let v2 = std::fs::read_to_string(dir.join("types").join(index.to_string()))
        .map(|t| t.trim().eq_ignore_ascii_case("RoCE v2"))
        .unwrap_or(false);
    let mac = std::fs::read_to_string(dir.join("ndevs").join(index.to_string()))
        .ok()
        .and_then(|ndev| {
            std::fs::read_to_string(sysfs.join("class/net").join(ndev.trim()).join("address")).ok()
        })
        .and_then(|m| parse_mac(&m));
    (v2, mac)
}

fn random_psn() -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (nanos ^ std::process::id().rotate_left(12)) & 0xff_ffff
}

impl RdmaServer {
    /// Opens the device, allocates the protection domain and the completion queue, and
    /// picks the GID.
    pub fn open(config: &RdmaConfig) -> Result<Self> {
        let mut count: c_int = 0;
        // SAFETY: `count` is a valid out-pointer; the list is freed below.
        let list = unsafe { ffi::ibv_get_device_list(&mut count) };
        if list.is_null() {
            return Err(os_error("ibv_get_device_list (is the RDMA stack loaded?)"));
        }
        let mut chosen = None;
        let mut names = Vec::new();
        for i in 0..count.max(0) as usize {
            // SAFETY: `list` has `count` valid device pointers.
            let dev = unsafe { *list.add(i) };
            // SAFETY: a device of the list; the name is a NUL-terminated string it owns.
            let name = unsafe { CStr::from_ptr(ffi::ibv_get_device_name(dev) as *const c_char) }
                .to_string_lossy()
                .into_owned();
            if chosen.is_none() && config.device.as_ref().is_none_or(|want| *want == name) {
                chosen = Some((dev, name.clone()));
            }
            names.push(name);
        }
        let opened = chosen.map(|(dev, name)| {
            // SAFETY: a device of the list, still valid before the list is freed.
            (unsafe { ffi::ibv_open_device(dev) }, name)
        });
        // SAFETY: the list from `ibv_get_device_list`; opened contexts stay valid.
        unsafe { ffi::ibv_free_device_list(list) };
        let Some((context, device)) = opened else {
            match &config.device {
                Some(want) => bail!("no RDMA device {want} (found: {})", names.join(", ")),
                None => bail!(
                    "no RDMA device found (load a driver, or Soft-RoCE: rdma link add rxe0 type rxe netdev <if>)"
                ),
            }
        };
        if context.is_null() {
            return Err(os_error(&format!("ibv_open_device {device}")));
        }
        let mut server = RdmaServer {
            context,
            pd: std::ptr::null_mut(),
            cq: std::ptr::null_mut(),
            device,
            port: config.port,
            gid_index: 0,
            gid: [0; 16],
            mac: [0; 6],
            capacity: config.capacity,
            used: 0,
            regions: HashMap::new(),
        };
        // SAFETY: an open context.
        server.pd = unsafe { ffi::ibv_alloc_pd(context) };
        if server.pd.is_null() {
            return Err(os_error("ibv_alloc_pd"));
        }
        // SAFETY: an open context; no channel, no completion vector needed (the node
        // posts nothing and polls nothing).
        server.cq = unsafe {
            ffi::ibv_create_cq(context, 16, std::ptr::null_mut(), std::ptr::null_mut(), 0)
        };
        if server.cq.is_null() {
            return Err(os_error("ibv_create_cq"));
        }
        server.pick_gid(config.gid_index)?;
        Ok(server)
    }

    fn query_gid(&self, index: u8) -> Option<[u8; 16]> {
        let mut gid = [0u8; 16];
        // SAFETY: an open context; `gid` is 16 writable bytes.
        let rc = unsafe { ffi::ibv_query_gid(self.context, self.port, index as c_int, &mut gid) };
        (rc == 0).then_some(gid)
    }

    fn pick_gid(&mut self, wanted: Option<u8>) -> Result<()> {
        let sysfs = Path::new("/sys");
        let index = match wanted {
            Some(i) => i,
            None => (0..=254u8)
                .find(|&i| {
                    self.query_gid(i).is_some_and(|g| gid_ipv4(&g).is_some())
                        && gid_attrs(sysfs, &self.device, self.port, i).0
                })
                .with_context(|| {
                    format!(
                        "{} port {} has no RoCE v2 IPv4 GID: give its network interface an \
                         IPv4 address, or choose one with the GID index option",
                        self.device, self.port
                    )
                })?,
        };
        self.gid = self
            .query_gid(index)
            .with_context(|| format!("GID index {index} of {} port {}", self.device, self.port))?;
        self.gid_index = index;
        self.mac = gid_attrs(sysfs, &self.device, self.port, index).1.unwrap_or([0; 6]);
        if self.mac == [0; 6] {
            bail!(
                "cannot find the MAC address behind GID {index} of {} (sysfs gid_attrs/ndevs)",
                self.device
            );
        }
        Ok(())
    }

    /// One line describing the node's RDMA side.
    pub fn describe(&self) -> String {
        let ip = gid_ipv4(&self.gid)
            .map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]))
            .unwrap_or_default();
        format!(
            "rdma on {} port {}, GID index {} ({ip}), MAC {}",
            self.device,
            self.port,
            self.gid_index,
            MacText(self.mac)
        )
    }

    /// Answers an exchange frame from an image (EtherType 0x88B6): the reply frame to send
    /// back to the sender, or `None` for a frame that is not a connect request.
    pub fn handle_frame(&mut self, frame: &[u8], node_mac: [u8; 6]) -> Option<Vec<u8>> {
        let (src, payload) = parse_frame(frame)?;
        let request = ConnectRequest::decode(payload).ok()?;
        let reply = self.connect(&request);
        let mut out = vec![0u8; 14 + REPLY_LEN];
        let n = encode_frame(src, node_mac, &reply.encode(), &mut out);
        out.truncate(n);
        Some(out)
    }

    /// Accepts (or refuses) an image's connection request.
    pub fn connect(&mut self, request: &ConnectRequest) -> ConnectReply {
        match self.try_connect(request) {
            Ok(reply) => reply,
            Err((status, error)) => {
                eprintln!("memnode: rdma: refused {}: {error:#}", request.qpn);
                ConnectReply::refusal(request, status)
            }
        }
    }

    fn try_connect(
        &mut self,
        request: &ConnectRequest,
    ) -> Result<ConnectReply, (ReplyStatus, anyhow::Error)> {
        let bad = |what: String| (ReplyStatus::BAD_REQUEST, anyhow::anyhow!(what));
        if !(1..=5).contains(&request.mtu) {
            return Err(bad(format!("path MTU code {}", request.mtu)));
        }
        if request.region_size == 0 || !request.region_size.is_multiple_of(4096) {
            return Err(bad(format!("region size {:#x} is not whole pages", request.region_size)));
        }
        if let Some(region) = self.regions.get(&request.key) {
            if region.size != request.region_size {
                return Err(bad(format!(
                    "the region exists with {} bytes, {} asked",
                    region.size, request.region_size
                )));
            }
            if region.request == *request && !region.qp.is_null() {
                return Ok(region.reply); // a retransmitted request
            }
        } else {
            if self.used + request.region_size > self.capacity {
                return Err((
                    ReplyStatus::NO_CAPACITY,
                    anyhow::anyhow!(
                        "{} bytes asked, {} of {} free",
                        request.region_size,
                        self.capacity - self.used,
                        self.capacity
                    ),
                ));
            }
            let region = self.register(request).map_err(|e| (ReplyStatus::RDMA_FAILED, e))?;
            self.used += request.region_size;
            self.regions.insert(request.key, region);
        }
        let (pd, cq, port, gid_index) = (self.pd, self.cq, self.port, self.gid_index);
        let (gid, mac) = (self.gid, self.mac);
        let region = self.regions.get_mut(&request.key).expect("inserted");
        region.destroy_qp();
        let qp = create_connected_qp(pd, cq, port, gid_index, request)
            .map_err(|e| (ReplyStatus::RDMA_FAILED, e))?;
        region.qp = qp.qp;
        // SAFETY: `mr` is the live MR of this region.
        let (base, rkey) = unsafe { ((*region.mr).addr as u64, (*region.mr).rkey) };
        region.request = *request;
        region.reply = ConnectReply {
            status: ReplyStatus::OK,
            key: request.key,
            qpn: Qpn(qp.qpn),
            psn: Psn(qp.psn),
            gid,
            mac,
            mtu: request.mtu,
            max_reads: MAX_DEST_READS,
            rkey: Rkey(rkey),
            region_base: base,
            region_size: region.size,
        };
        match gid_ipv4(&request.gid) {
            Some(ip) => println!(
                "memnode: rdma: {} of {} at {}.{}.{}.{} connected ({} MiB); if its MAC is not in the neighbour table: \
                 ip neigh replace {}.{}.{}.{} lladdr {} dev <RDMA netdev> nud permanent",
                request.qpn,
                MacText(request.mac),
                ip[0],
                ip[1],
                ip[2],
                ip[3],
                region.size >> 20,
                ip[0],
                ip[1],
                ip[2],
                ip[3],
                MacText(request.mac)
            ),
            None => {
                println!("memnode: rdma: {} of {} connected", request.qpn, MacText(request.mac))
            }
        }
        Ok(region.reply)
    }

    fn register(&self, request: &ConnectRequest) -> Result<Region> {
        let memory = RegionMemory::new(request.region_size)?;
        let access = ffi::ACCESS_LOCAL_WRITE | ffi::ACCESS_REMOTE_READ | ffi::ACCESS_REMOTE_WRITE;
        // SAFETY: `memory` is `region_size` bytes we own; it outlives the MR (Region
        // deregisters before freeing).
        let mr = unsafe {
            ffi::ibv_reg_mr(
                self.pd,
                memory.ptr.as_ptr().cast(),
                request.region_size as usize,
                access,
            )
        };
        if mr.is_null() {
            return Err(os_error(&format!(
                "ibv_reg_mr of {} bytes (raise the locked-memory limit: ulimit -l unlimited)",
                request.region_size
            )));
        }
        Ok(Region {
            qp: std::ptr::null_mut(),
            mr,
            _memory: memory,
            size: request.region_size,
            request: *request,
            reply: ConnectReply::refusal(request, ReplyStatus::RDMA_FAILED),
        })
    }

    /// Regions served.
    pub fn regions(&self) -> usize {
        self.regions.len()
    }
}

struct ConnectedQp {
    qp: *mut ffi::IbvQp,
    qpn: u32,
    psn: u32,
}

/// Creates an RC queue pair and moves it to RTS towards the image of `request`.
fn create_connected_qp(
    pd: *mut ffi::Opaque,
    cq: *mut ffi::Opaque,
    port: u8,
    gid_index: u8,
    request: &ConnectRequest,
) -> Result<ConnectedQp> {
    let mut init = ffi::IbvQpInitAttr {
        qp_context: std::ptr::null_mut(),
        send_cq: cq,
        recv_cq: cq,
        srq: std::ptr::null_mut(),
        cap: ffi::IbvQpCap {
            max_send_wr: 1,
            max_recv_wr: 1,
            max_send_sge: 1,
            max_recv_sge: 1,
            max_inline_data: 0,
        },
        qp_type: ffi::QPT_RC,
        sq_sig_all: 0,
    };
    // SAFETY: a live PD and CQ; `init` is a valid attribute block.
    let qp = unsafe { ffi::ibv_create_qp(pd, &mut init) };
    if qp.is_null() {
        return Err(os_error("ibv_create_qp"));
    }
    let modify = |attr: &mut ffi::IbvQpAttr, mask: c_int, what: &str| -> Result<()> {
        // SAFETY: `qp` is the live QP created above; `attr` a valid attribute block.
        let rc = unsafe { ffi::ibv_modify_qp(qp, attr, mask) };
        if rc != 0 {
            // SAFETY: the QP is not used again.
            unsafe { ffi::ibv_destroy_qp(qp) };
            bail!("ibv_modify_qp to {what}: {}", std::io::Error::from_raw_os_error(rc));
        }
        Ok(())
    };
    let mut attr = ffi::IbvQpAttr {
        qp_state: ffi::QPS_INIT,
        pkey_index: 0,
        port_num: port,
        qp_access_flags: ffi::ACCESS_LOCAL_WRITE
            | ffi::ACCESS_REMOTE_READ
            | ffi::ACCESS_REMOTE_WRITE,
        ..Default::default()
    };
    modify(
        &mut attr,
        ffi::QP_STATE | ffi::QP_PKEY_INDEX | ffi::QP_PORT | ffi::QP_ACCESS_FLAGS,
        "INIT",
    )?;

    let mut attr = ffi::IbvQpAttr {
        qp_state: ffi::QPS_RTR,
        path_mtu: request.mtu as u32,
        dest_qp_num: request.qpn.0,
        rq_psn: request.psn.0,
        max_dest_rd_atomic: request.max_reads.clamp(1, MAX_DEST_READS),
        min_rnr_timer: 12,
        ah_attr: ffi::IbvAhAttr {
            grh: ffi::IbvGlobalRoute {
                dgid: request.gid,
                sgid_index: gid_index,
                hop_limit: 64,
                ..Default::default()
            },
            is_global: 1,
            port_num: port,
            ..Default::default()
        },
        ..Default::default()
    };
    modify(
        &mut attr,
        ffi::QP_STATE
            | ffi::QP_AV
            | ffi::QP_PATH_MTU
            | ffi::QP_DEST_QPN
            | ffi::QP_RQ_PSN
            | ffi::QP_MAX_DEST_RD_ATOMIC
            | ffi::QP_MIN_RNR_TIMER,
        "RTR",
    )?;

    let psn = random_psn();
    let mut attr = ffi::IbvQpAttr {
        qp_state: ffi::QPS_RTS,
        sq_psn: psn,
        timeout: ACK_TIMEOUT,
        retry_cnt: 7,
        rnr_retry: 7,
        max_rd_atomic: 1,
        ..Default::default()
    };
    modify(
        &mut attr,
        ffi::QP_STATE
            | ffi::QP_TIMEOUT
            | ffi::QP_RETRY_CNT
            | ffi::QP_RNR_RETRY
            | ffi::QP_SQ_PSN
            | ffi::QP_MAX_QP_RD_ATOMIC,
        "RTS",
    )?;
    // SAFETY: a live QP; `qp_num` is set at creation.
    let qpn = unsafe { (*qp).qp_num };
    Ok(ConnectedQp { qp, qpn, psn })
}

impl Drop for RdmaServer {
    fn drop(&mut self) {
        self.regions.clear();
        // SAFETY: each object was created by `open` (or is null if creation failed) and
        // is destroyed once, the QPs using the CQ and PD first (the regions above).
        unsafe {
            if !self.cq.is_null() {
                ffi::ibv_destroy_cq(self.cq);
            }
            if !self.pd.is_null() {
                ffi::ibv_dealloc_pd(self.pd);
            }
            ffi::ibv_close_device(self.context);
        }
    }
}

struct MacText([u8; 6]);

impl fmt::Display for MacText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_gids() {
        let mut gid = [0u8; 16];
        gid[10] = 0xff;
        gid[11] = 0xff;
        gid[12..].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(gid_ipv4(&gid), Some([10, 0, 0, 1]));
        gid[0] = 0xfe;
        assert_eq!(gid_ipv4(&gid), None);
    }

    #[test]
    fn gid_attributes_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let port = port_dir(root.path(), "rxe0", 1).join("gid_attrs");
        std::fs::create_dir_all(port.join("types")).unwrap();
        std::fs::create_dir_all(port.join("ndevs")).unwrap();
        std::fs::write(port.join("types/1"), "RoCE v2\n").unwrap();
        std::fs::write(port.join("types/0"), "IB/RoCE v1\n").unwrap();
        std::fs::write(port.join("ndevs/1"), "eth9\n").unwrap();
        std::fs::create_dir_all(root.path().join("class/net/eth9")).unwrap();
        std::fs::write(root.path().join("class/net/eth9/address"), "02:00:00:aa:bb:cc\n").unwrap();
        assert_eq!(gid_attrs(root.path(), "rxe0", 1, 1), (true, Some([2, 0, 0, 0xaa, 0xbb, 0xcc])));
        assert_eq!(gid_attrs(root.path(), "rxe0", 1, 0), (false, None));
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
    }
}
