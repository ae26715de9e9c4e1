//! The network stack in a running kernel: TCP from the host to the image through QEMU's
//! user networking.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{assert_exit, boot_with, options};
use xtask::qemu::{AppNet, ImageStatus, RunOptions};

/// A port on 127.0.0.1 that nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Connects, retrying while the image boots.
fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            // QEMU accepts before the guest does; a first echo proves the guest is there.
            let mut probe = s.try_clone().unwrap();
            if probe.write_all(b"ping\n").is_ok() {
                let mut buf = [0u8; 5];
                if probe.read_exact(&mut buf).is_ok() && &buf == b"ping\n" {
                    return s;
                }
            }
        }
        assert!(Instant::now() < deadline, "the image never answered on port {port}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn several_clients_are_echoed_concurrently() {
    let port = free_port();
    let image = std::thread::spawn(move || {
        boot_with(
            "configs/ktest.toml",
            RunOptions {
                cmdline: "test=echo port=7000 clients=3".into(),
                app_net: Some(AppNet::User { host_port: port, guest_port: 7000 }),
                ..options()
            },
        )
    });
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(port)).collect();
    for round in 0..20 {
        for (i, c) in clients.iter_mut().enumerate() {
            let msg = format!("client {i} round {round} {}\n", "x".repeat(round * 100));
            c.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
    }
    for c in &mut clients {
        c.write_all(b"quit\n").unwrap();
    }
    let run = image.join().unwrap();
    assert_exit(&run, ImageStatus::Exited(0));
    assert!(run.console.contains("echo: 3 client(s) said quit"));
}
