//! Bring-up, connection and teardown against the model, and their failures.

use alloc::collections::VecDeque;
use alloc::string::ToString;
use alloc::vec::Vec;

use remora_rmem::{Clock, Link, LinkError};

use super::support::*;
use crate::device::ipv4_gid;
use crate::exchange::{
    ConnectReply, ConnectRequest, ControlLink, EXCHANGE_ETHERTYPE, ExchangeError, FrameControlLink,
    ReplyStatus, encode_frame, parse_frame,
};
use crate::hw::cmd::Opcode;
use crate::model::{Fault, Model, ModelConfig, NodeConfig, NodeFault, QpState};
use crate::transport::RegionRequest;
use crate::{CmdFailure, Error, Mlx5Transport};

fn opcodes(model: &Model) -> Vec<(Opcode, u16)> {
    model.commands().iter().map(|c| (c.opcode, c.op_mod)).collect()
}

#[test]
fn bring_up_and_teardown_follow_the_sequence() {
    let model = model();
    let cfg = ModelConfig::default();
    let dev = bring_up(&model).expect("bring-up");
    let info = dev.info().clone();
    assert_eq!(info.mac, cfg.mac);
    assert_eq!(info.gid, ipv4_gid(IP));
    assert_eq!(info.firmware, (16, 28, 1000));
    assert!(info.link_up);
    assert_eq!(info.log_max_qp_sz, cfg.log_max_qp_sz);
    assert_eq!(info.log_max_ra_req_qp, cfg.log_max_ra_req_qp);
    assert!(info.qp_ts_format);
    assert_eq!(info.bf_size, 512);
    assert_eq!(model.gid(0), Some((ipv4_gid(IP), cfg.mac, 2)));
    assert_eq!(model.firmware_pages(), (cfg.boot_pages + cfg.init_pages) as usize);
    assert_eq!(dev.firmware_pages(), model.firmware_pages());

    let expected = [
        (Opcode::ENABLE_HCA, 0),
        (Opcode::QUERY_ISSI, 0),
        (Opcode::SET_ISSI, 0),
        (Opcode::QUERY_PAGES, 1),
        (Opcode::MANAGE_PAGES, 1),
        (Opcode::QUERY_HCA_CAP, 1),
        (Opcode::SET_HCA_CAP, 0),
        (Opcode::QUERY_HCA_CAP, 1),
        (Opcode::QUERY_HCA_CAP, 9),
        (Opcode::QUERY_PAGES, 2),
        (Opcode::MANAGE_PAGES, 1),
        (Opcode::INIT_HCA, 0),
        (Opcode::MODIFY_NIC_VPORT_CONTEXT, 0),
        (Opcode::QUERY_NIC_VPORT_CONTEXT, 0),
        (Opcode::QUERY_VPORT_STATE, 0),
        (Opcode::ALLOC_UAR, 0),
        (Opcode::ALLOC_PD, 0),
        (Opcode::CREATE_EQ, 0),
        (Opcode::CREATE_MKEY, 0),
        (Opcode::SET_ROCE_ADDRESS, 0),
    ];
    assert_eq!(opcodes(&model), expected);
    assert!(model.commands().iter().all(|c| c.status == 0 && c.delivery == 0 && c.slot == 0));

    let stats = dev.shutdown().expect("teardown");
    assert_eq!(stats.pages_given, stats.pages_returned);
    assert_eq!(stats.command_errors, 0);
    let tail: Vec<_> = opcodes(&model).into_iter().skip(expected.len()).collect();
    assert_eq!(
        tail,
        [
            (Opcode::DESTROY_MKEY, 0),
            (Opcode::DESTROY_EQ, 0),
            (Opcode::DEALLOC_PD, 0),
            (Opcode::DEALLOC_UAR, 0),
            (Opcode::TEARDOWN_HCA, 0),
            (Opcode::MANAGE_PAGES, 2),
            (Opcode::DISABLE_HCA, 0),
        ]
    );
    assert_eq!(model.firmware_pages(), 0);
    assert_eq!(model.allocated_pages(), 0, "teardown frees every DMA page");
    model.assert_clean();
}

#[test]
fn connect_sets_up_the_queue_pair_as_exchanged() {
    let model = model();
    let node = NodeConfig::default();
    let qp = qp_config(32);
    let t = connect_with(&model, qp).expect("connect");
    let view = model.qp(t.qpn()).expect("the QP exists");
    assert_eq!(view.state, QpState::Rts);
    assert_eq!(view.remote_qpn, node.qpn);
    assert_eq!(view.next_rcv_psn, node.psn);
    assert_eq!(view.next_send_psn, qp.psn.0);
    assert_eq!(view.rgid, node.gid);
    assert_eq!(view.rmac, node.mac);
    assert_eq!(view.mtu, 3);
    assert_eq!(view.src_addr_index, 0);
    assert!(view.grh);
    assert_eq!(view.udp_sport, 0xc000);
    assert_eq!(view.vhca_port, 1);
    assert_eq!(view.log_sra_max, 4, "min(depth 32, node 16, caps 2^4) READs outstanding");
    assert_eq!(view.log_rra_max, 0);
    assert_eq!((view.retry_count, view.rnr_retry, view.ack_timeout), (7, 7, 14));
    assert!(!view.remote_read && !view.remote_write, "the node gets no access to our memory");
    assert_eq!(view.ts_format, 1);
    assert_eq!(view.user_index, 0xff_ffff);
    assert_eq!(view.log_sq_size, 5);
    assert_eq!(view.cqn_snd, view.cqn_rcv);
    let peer = *t.peer();
    assert_eq!(peer.base, node.base);
    assert_eq!(peer.rkey.0, node.rkey);
    assert_eq!(peer.size, REGION);
    t.shutdown().expect("shutdown");
    assert_eq!(model.firmware_pages(), 0);
    assert_eq!(model.allocated_pages(), 0);
    model.assert_clean();
}

#[test]
fn many_firmware_pages_go_in_batches() {
    let model =
        Model::new(ModelConfig { boot_pages: 1300, init_pages: 700, ..ModelConfig::default() });
    let dev = bring_up(&model).expect("bring-up");
    let gives = model.commands().iter().filter(|c| c.opcode == Opcode::MANAGE_PAGES).count();
    assert_eq!(gives, 3 + 2, "512 pages per MANAGE_PAGES");
    assert_eq!(model.firmware_pages(), 2000);
    dev.shutdown().expect("teardown");
    assert_eq!(model.firmware_pages(), 0);
    model.assert_clean();
}

#[test]
fn page_request_during_a_command_is_answered_on_the_reserved_slot() {
    let cfg = ModelConfig { page_request: Some((Opcode::CREATE_CQ, 10)), ..ModelConfig::default() };
    let base = (cfg.boot_pages + cfg.init_pages) as usize;
    let model = Model::new(cfg);
    let t = connect(&model, 16);
    let history = model.commands();
    let give = history
        .iter()
        .position(|c| c.opcode == Opcode::MANAGE_PAGES && c.slot == 31)
        .expect("MANAGE_PAGES on the reserved slot");
    let create = history.iter().position(|c| c.opcode == Opcode::CREATE_CQ).expect("CREATE_CQ");
    assert!(give < create, "the CQ completes only after the pages came");
    assert_eq!(history[give].op_mod, 1);
    assert_eq!(history[create].slot, 0);
    assert_eq!(model.firmware_pages(), base + 10);
    assert_eq!(t.device().stats().page_requests, 1);
    t.shutdown().expect("shutdown");
    assert_eq!(model.firmware_pages(), 0);
    model.assert_clean();
}

#[test]
fn firmware_giving_pages_back_is_answered_with_take() {
    let cfg = ModelConfig { page_request: Some((Opcode::CREATE_QP, -8)), ..ModelConfig::default() };
    let base = (cfg.boot_pages + cfg.init_pages) as usize;
    let model = Model::new(cfg);
    let t = connect(&model, 16);
    let take = model
        .commands()
        .into_iter()
        .find(|c| c.opcode == Opcode::MANAGE_PAGES && c.op_mod == 2)
        .expect("MANAGE_PAGES TAKE");
    assert_eq!(take.slot, 31);
    assert_eq!(model.firmware_pages(), base - 8);
    assert_eq!(t.device().firmware_pages(), base - 8);
    t.shutdown().expect("shutdown");
    assert_eq!(model.firmware_pages(), 0);
    assert_eq!(model.allocated_pages(), 0);
    model.assert_clean();
}

#[test]
fn a_stalled_command_times_out_naming_its_opcode() {
    let model =
        Model::new(ModelConfig { stall: Some(Opcode::CREATE_MKEY), ..ModelConfig::default() });
    let err = bring_up(&model).err().expect("a timeout");
    let cmd = err.command().expect("a command error");
    assert_eq!(cmd.opcode, Opcode::CREATE_MKEY);
    assert!(matches!(cmd.failure, CmdFailure::Timeout { waited_ms } if waited_ms >= 50));
    let text = err.to_string();
    assert!(text.contains("CREATE_MKEY (0x200)") && text.contains("no completion after"), "{text}");
}

#[test]
fn a_failed_command_reports_status_and_syndrome_and_undoes_the_connect() {
    let cfg = ModelConfig {
        fail: Some((Opcode::CREATE_QP, 0x03, 0xdead_beef)),
        ..ModelConfig::default()
    };
    let model = Model::new(cfg);
    let err = connect_with(&model, qp_config(8)).err().expect("CREATE_QP fails");
    let cmd = *err.command().expect("a command error");
    assert_eq!(cmd.opcode, Opcode::CREATE_QP);
    assert_eq!(
        cmd.failure,
        CmdFailure::Status { status: crate::hw::cmd::CmdStatus(3), syndrome: 0xdead_beef }
    );
    let text = err.to_string();
    assert!(text.contains("CREATE_QP (0x500)"), "{text}");
    assert!(text.contains("bad parameter (0x3)") && text.contains("0xdeadbeef"), "{text}");
    // The CQ made before was destroyed, the device torn down, all memory back.
    assert!(model.commands().iter().any(|c| c.opcode == Opcode::DESTROY_CQ && c.status == 0));
    assert_eq!(model.firmware_pages(), 0);
    assert_eq!(model.allocated_pages(), 0);
    model.assert_clean();
}

#[test]
fn a_health_syndrome_is_reported_instead_of_a_bare_timeout() {
    let model =
        Model::new(ModelConfig { stall: Some(Opcode::CREATE_EQ), ..ModelConfig::default() });
    model.inject(Fault::Health(0x08));
    let err = bring_up(&model).err().expect("fails");
    assert_eq!(err, Error::Health { syndrome: 0x08, what: "unrecoverable hardware error" });
    assert!(err.to_string().contains("unrecoverable hardware error (syndrome 0x8)"));
}

#[test]
fn firmware_that_never_finishes_initializing() {
    let model = Model::new(ModelConfig { init_delay_reads: u32::MAX, ..ModelConfig::default() });
    assert!(
        matches!(bring_up(&model), Err(Error::FirmwareNotReady { waited_ms }) if waited_ms >= 50)
    );
}

#[test]
fn devices_without_what_the_driver_needs_are_refused() {
    let cases = [
        (ModelConfig { issi1: false, ..ModelConfig::default() }, "ISSI 1"),
        (ModelConfig { ethernet: false, ..ModelConfig::default() }, "Ethernet"),
        (ModelConfig { roce: false, ..ModelConfig::default() }, "RoCE"),
    ];
    for (cfg, what) in cases {
        let model = Model::new(cfg);
        match bring_up(&model) {
            Err(e @ Error::Unsupported { .. }) => assert!(e.to_string().contains(what), "{e}"),
            other => panic!("expected unsupported {what}, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn queue_sizes_are_checked_against_the_caps_and_each_other() {
    let model = Model::new(ModelConfig { log_max_qp_sz: 4, ..ModelConfig::default() });
    let err = connect_with(&model, qp_config(64)).err().expect("too deep");
    assert_eq!(err, Error::Limit { what: "send queue (mlx5.queue_depth)", wanted: 64, max: 16 });
    assert_eq!(model.firmware_pages(), 0, "the device was torn down");
    model.assert_clean();

    let model = Model::new(ModelConfig::default());
    let mut qp = qp_config(64);
    qp.cq_size = 32;
    assert!(matches!(connect_with(&model, qp), Err(Error::Config { .. })));
    let mut qp = qp_config(8);
    qp.mtu = 9;
    assert!(matches!(
        connect_with(&Model::new(ModelConfig::default()), qp),
        Err(Error::Config { .. })
    ));
}

#[test]
fn the_memory_node_refusing_or_not_answering() {
    for (fault, expect) in [
        (NodeFault::Refuse(ReplyStatus::NO_CAPACITY), "no capacity"),
        (NodeFault::Silent, "no answer after"),
    ] {
        let model = Model::new(ModelConfig {
            node: NodeConfig { fault, ..NodeConfig::default() },
            ..ModelConfig::default()
        });
        let err = connect_with(&model, qp_config(8)).err().expect("fails");
        assert!(matches!(err, Error::Exchange(_)), "{err:?}");
        assert!(err.to_string().contains(expect), "{err}");
        assert_eq!(model.firmware_pages(), 0);
        assert_eq!(model.allocated_pages(), 0);
        model.assert_clean();
    }
}

/// A control link that alters the model node's replies.
struct Tamper<F>(crate::model::ModelControl, F);

impl<F: FnMut(&mut ConnectReply)> ControlLink for Tamper<F> {
    fn exchange(&mut self, request: &ConnectRequest) -> Result<ConnectReply, ExchangeError> {
        let mut reply = self.0.exchange(request)?;
        (self.1)(&mut reply);
        Ok(reply)
    }
}

#[test]
fn unusable_node_parameters_are_refused() {
    type Tampering = fn(&mut ConnectReply);
    let cases: [(Tampering, &str); 4] = [
        (|r| r.region_size -= 4096, "smaller"),
        (|r| r.mtu = 5, "MTU"),
        (|r| r.qpn = crate::Qpn(0), "QPN 0"),
        (|r| r.key[0] ^= 1, "another region key"),
    ];
    for (tamper, what) in cases {
        let model = model();
        let dev = bring_up(&model).unwrap();
        let mut control = Tamper(model.control(), tamper);
        let err = Mlx5Transport::connect(
            dev,
            qp_config(8),
            RegionRequest { key: KEY, size: REGION },
            &mut control,
        )
        .err()
        .expect("refused");
        assert!(matches!(err, Error::Peer { .. }) && err.to_string().contains(what), "{err}");
        assert_eq!(model.firmware_pages(), 0);
        model.assert_clean();
    }
}

/// A frame link whose far end is a memory node answering exchange frames (after
/// `delay` receives), for [`FrameControlLink`].
struct NodeLink {
    node: Option<crate::model::ModelControl>,
    inbox: VecDeque<Vec<u8>>,
    delay: usize,
    sent: usize,
}

impl Link for NodeLink {
    fn mac(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 9]
    }
    fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.sent += 1;
        let (src, payload) = parse_frame(frame).expect("an exchange frame");
        assert_eq!(&frame[..6], &[0xff; 6], "broadcast");
        let request = ConnectRequest::decode(payload).expect("a request");
        if let Some(node) = self.node.as_mut() {
            let reply = node
                .exchange(&request)
                .unwrap_or_else(|_| ConnectReply::refusal(&request, ReplyStatus::RDMA_FAILED));
            // Noise first: a frame of another type and a reply for another key.
            self.inbox.push_back(alloc::vec![0u8; 60]);
            let mut other = reply;
            other.key[0] ^= 1;
            let mut f = [0u8; 100];
            let n = encode_frame(src, [2, 0, 0, 0, 0, 1], &other.encode(), &mut f);
            self.inbox.push_back(f[..n].to_vec());
            let n = encode_frame(src, [2, 0, 0, 0, 0, 1], &reply.encode(), &mut f);
            self.inbox.push_back(f[..n].to_vec());
        }
        Ok(())
    }
    fn receive<R>(&mut self, handle: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.delay > 0 {
            self.delay -= 1;
            return None;
        }
        let f = self.inbox.pop_front()?;
        Some(handle(&f))
    }
}

struct StepClock(core::cell::Cell<u64>);

impl Clock for StepClock {
    fn now_ns(&self) -> u64 {
        self.0.set(self.0.get() + 1000);
        self.0.get()
    }
}

#[test]
fn the_exchange_travels_in_ethernet_frames() {
    let model = model();
    let link = NodeLink { node: Some(model.control()), inbox: VecDeque::new(), delay: 3, sent: 0 };
    let mut control =
        FrameControlLink::new(link, StepClock(core::cell::Cell::new(0)), 1_000_000, 3);
    let dev = bring_up(&model).unwrap();
    let t = Mlx5Transport::connect(
        dev,
        qp_config(8),
        RegionRequest { key: KEY, size: REGION },
        &mut control,
    )
    .expect("connect over frames");
    assert_eq!(control.into_inner().sent, 1);
    assert_eq!(EXCHANGE_ETHERTYPE, 0x88b6);
    t.shutdown().unwrap();
    model.assert_clean();

    let link = NodeLink { node: None, inbox: VecDeque::new(), delay: 0, sent: 0 };
    let mut control =
        FrameControlLink::new(link, StepClock(core::cell::Cell::new(0)), 1_000_000, 3);
    let request = ConnectRequest {
        key: KEY,
        region_size: REGION,
        qpn: crate::Qpn(9),
        psn: crate::Psn(1),
        gid: [0; 16],
        mac: [0; 6],
        mtu: 3,
        max_reads: 4,
    };
    assert!(matches!(control.exchange(&request), Err(ExchangeError::Timeout { tries: 3, .. })));
    assert_eq!(control.into_inner().sent, 3, "sent again after each timeout");
}
