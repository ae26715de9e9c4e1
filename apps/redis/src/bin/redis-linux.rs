//! The Redis-compatible server of Remora as an ordinary Linux program: the same core and
//! the same single-threaded loop as the image, on std sockets (epoll) and the normal heap.
//!
//! `redis-linux [--port 6379] [--bind 0.0.0.0] [--maxclients 1000]
//!  [--proto-max-bulk-len 536870912] [--client-query-buffer-limit 1073741824]
//!  [--list-node-bytes 8192] [--hz 10]`

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use app_redis::ServerConfig;

fn usage(problem: &str) -> ExitCode {
    eprintln!("redis-linux: {problem}");
    eprintln!(
        "usage: redis-linux [--port N] [--bind ADDR] [--maxclients N] [--proto-max-bulk-len BYTES] \
         [--client-query-buffer-limit BYTES] [--list-node-bytes BYTES] [--hz N]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut config = ServerConfig::default();
    let mut bind: IpAddr = IpAddr::from([0, 0, 0, 0]);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return usage("a Redis-compatible server");
        }
        let Some(value) = args.next() else {
            return usage(&format!("{flag} needs a value"));
        };
        let number =
            || value.parse::<usize>().map_err(|_| format!("{flag}: {value:?} is not a number"));
        let result = match flag.as_str() {
            "--port" => value
                .parse()
                .map(|p| config.port = p)
                .map_err(|_| format!("--port: {value:?} is not a port")),
            "--bind" => value
                .parse()
                .map(|a| bind = a)
                .map_err(|_| format!("--bind: {value:?} is not an address")),
            "--maxclients" => number().map(|n| config.maxclients = n.max(1)),
            "--proto-max-bulk-len" => {
                number().map(|n| config.limits.max_bulk = n.clamp(1, u32::MAX as usize - 8))
            }
            "--client-query-buffer-limit" => {
                number().map(|n| config.limits.max_query_buffer = n.max(1))
            }
            "--list-node-bytes" => number().map(|n| config.list_node_bytes = n),
            "--hz" => number().map(|n| config.hz = n.clamp(1, 500) as u32),
            _ => Err(format!("unknown option {flag}")),
        };
        if let Err(problem) = result {
            return usage(&problem);
        }
    }
    match app_redis::linux::run(SocketAddr::new(bind, config.port), config) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis-linux: cannot listen on {bind}:{}: {e}", config.port);
            ExitCode::FAILURE
        }
    }
}
