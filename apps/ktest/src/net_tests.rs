//! Tests of the network stack: a TCP echo service.

use alloc::vec::Vec;

use remora_kvm::{BootInfo, println};
use remora_net::{NetError, TcpListener, TcpStream};

/// Listens on `port=` (default 7000) and echoes what each client sends; a line `quit`
/// ends the test with success after `clients=` (default 1) clients have said it.
pub fn echo(boot: &'static BootInfo) -> Result<(), &'static str> {
    let port = boot.cmdline.get("port").and_then(|p| p.parse().ok()).unwrap_or(7000);
    let clients: usize = boot.cmdline.get("clients").and_then(|c| c.parse().ok()).unwrap_or(1);
    let listener = TcpListener::bind(port).map_err(|_| "cannot listen")?;
    println!("echo: listening on port {port}");
    let mut open: Vec<(TcpStream, Vec<u8>)> = Vec::new();
    let mut done = 0;
    let mut buf = [0u8; 2048];
    while done < clients {
        while let Some(stream) = listener.try_accept() {
            open.push((stream, Vec::new()));
        }
        let mut i = 0;
        while i < open.len() {
            let (stream, line) = &mut open[i];
            let mut finished = false;
            match stream.try_read(&mut buf) {
                Ok(n) => {
                    let mut sent = 0;
                    while sent < n {
                        match stream.try_write(&buf[sent..n]) {
                            Ok(k) => sent += k,
                            Err(_) => break,
                        }
                        if sent < n {
                            remora_net::wait_for_activity(10);
                        }
                    }
                    line.extend_from_slice(&buf[..n]);
                    if line.windows(4).any(|w| w == b"quit") {
                        finished = true;
                        done += 1;
                    }
                }
                Err(NetError::Closed | NetError::Reset) => finished = true,
                Err(_) => return Err("a read failed"),
            }
            if finished {
                let (stream, _) = open.swap_remove(i);
                while stream.has_unsent() {
                    remora_net::wait_for_activity(10);
                }
                stream.close();
            } else {
                i += 1;
            }
        }
        remora_net::wait_for_activity(50);
    }
    // Let the last close go out.
    for _ in 0..20 {
        remora_net::wait_for_activity(5);
    }
    println!("echo: {done} client(s) said quit");
    Ok(())
}
