//! `cargo xtask`: build, run, test and configure Remora images.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use xtask::memnode::{NodeChoice, NodeOptions};
use xtask::qemu::{self, Accel, AppNet, RunOptions};
use xtask::{bench, image, testing};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test Remora images")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build an image: target/images/<name>.elf
    Build {
        #[arg(long, default_value = "configs/hello.toml")]
        config: PathBuf,
    },
    /// Build an image and boot it under QEMU, streaming its console
    Run {
        #[arg(long, default_value = "configs/hello.toml")]
        config: PathBuf,
        /// Accelerator: kvm where /dev/kvm is usable (the default), else tcg
        #[arg(long, value_enum, default_value_t = Accel::Auto)]
        accel: Accel,
        /// Kill QEMU after this many seconds
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Guest RAM in MiB (default: the image's kvm.guest_memory)
        #[arg(long)]
        memory: Option<u64>,
        /// Kernel command line for the image
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Use the memory node listening on this Unix socket instead of starting one
        #[arg(long, value_name = "PATH", conflicts_with = "memnode_udp")]
        memnode_socket: Option<PathBuf>,
        /// Use the memory node at this UDP address (host:port) instead of starting one
        #[arg(long, value_name = "HOST:PORT")]
        memnode_udp: Option<String>,
        /// Local UDP address (host:port) of the image's side, with --memnode-udp
        #[arg(long, value_name = "HOST:PORT", default_value = "0.0.0.0:7071")]
        udp_local: String,
        /// Fraction of frames the started memory node loses (for experiments)
        #[arg(long, default_value_t = 0.0)]
        drop_rate: f64,
        /// Host port (on 127.0.0.1) forwarded to the image's service port
        #[arg(long, default_value_t = 6379)]
        port: u16,
        /// Use this TAP interface for the application network instead of user networking
        #[arg(long, value_name = "IFNAME")]
        tap: Option<String>,
        /// The far-memory transport: the image config's (default), virtio-net or mlx5
        #[arg(long, value_name = "TRANSPORT")]
        transport: Option<String>,
        /// With --transport mlx5: pass this ConnectX function through with vfio-pci
        #[arg(long, value_name = "PCI ADDRESS", requires = "transport")]
        vfio: Option<String>,
        /// Extra QEMU arguments
        #[arg(last = true)]
        qemu_args: Vec<String>,
    },
    /// Print the resolved configuration of an image
    Config {
        #[arg(long, default_value = "configs/hello.toml")]
        config: PathBuf,
    },
    /// Check formatting and clippy (warnings are errors) for host and bare-metal crates
    Lint,
    /// Reproduce the seed's Figure 2: Redis under GET and LRANGE, per local-memory
    /// fraction, for Remora's policies and a Linux guest swapping to a remote block device
    Bench {
        /// A reduced matrix that runs in a few minutes
        #[arg(long)]
        quick: bool,
        /// Bytes of each workload's data set (K, M, G suffixes)
        #[arg(long, value_parser = parse_size)]
        working_set: Option<u64>,
        /// Requests per GET measurement (LRANGE takes a fifth)
        #[arg(long)]
        requests: Option<u64>,
        /// Only these systems (remora-none, remora-sequential, remora-majority, remora-redis, linux-redis, linux-ours)
        #[arg(long, value_delimiter = ',')]
        systems: Vec<String>,
        /// Local-memory fractions of the working set, e.g. 1,0.5,0.25,0.125
        #[arg(long, value_delimiter = ',')]
        fractions: Vec<f64>,
        /// Accelerator (default: tcg here; see README)
        #[arg(long, value_enum)]
        accel: Option<Accel>,
    },
    /// Run every test: host tests of every crate, then the QEMU integration tests
    Test {
        /// Accelerator for the integration tests (default tcg: see README)
        #[arg(long, value_enum)]
        accel: Option<Accel>,
        /// Only the host tests
        #[arg(long)]
        host_only: bool,
        /// Only integration tests whose name contains this
        filter: Option<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Build { config } => {
            let image = image::build(&config, false)?;
            for note in image.resolved.notes() {
                eprintln!("note: {note}");
            }
            println!("{}", image.elf.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            config,
            accel,
            timeout,
            memory,
            cmdline,
            memnode_socket,
            memnode_udp,
            udp_local,
            drop_rate,
            port,
            tap,
            transport,
            vfio,
            mut qemu_args,
        } => {
            let config = match &transport {
                Some(t) => image::with_transport(&config, t)?,
                None => config,
            };
            if let Some(address) = &vfio {
                qemu_args.extend(xtask::vfio::qemu_args(address)?);
            }
            let image = image::build(&config, true)?;
            let accel = accel.resolve()?;
            eprintln!("booting {} under QEMU with {accel}", image.elf.display());
            if image.resolved.component("net").is_some() && tap.is_none() {
                eprintln!(
                    "the image's port {} is at 127.0.0.1:{port}",
                    image::service_port(&image.resolved)
                );
            }
            let options = RunOptions {
                accel,
                timeout: Duration::from_secs(timeout),
                memory_mib: memory.unwrap_or_else(|| image::guest_memory_mib(&image.resolved)),
                cmdline,
                extra_args: qemu_args,
                echo: true,
                interactive: true,
                far_memory: image.resolved.component("rmem").map(|_| {
                    match (memnode_socket, memnode_udp) {
                        (Some(socket), _) => NodeChoice::Socket(socket),
                        (None, Some(remote)) => NodeChoice::Udp { remote, local: udp_local },
                        (None, None) => NodeChoice::Start(NodeOptions {
                            capacity: image::region_size(&image.resolved).max(64 << 20) * 2,
                            drop_rate,
                            ..NodeOptions::default()
                        }),
                    }
                }),
                kill_node_on: None,
                app_net: image.resolved.component("net").map(|_| match tap {
                    Some(ifname) => AppNet::Tap { ifname },
                    None => AppNet::User {
                        host_port: port,
                        guest_port: image::service_port(&image.resolved),
                    },
                }),
                stop: None,
            };
            let outcome = qemu::run(&image.elf, &options)?;
            eprintln!("{} ({accel}, {:.2} s)", outcome.status, outcome.wall_time.as_secs_f64());
            Ok(ExitCode::from(outcome.status.process_code() as u8))
        }
        Cmd::Config { config } => {
            let resolved = image::resolve(&config)?;
            print!("{}", resolved.render_tree());
            let path = image::images_dir().join(format!("{}.config.toml", resolved.image_name()));
            std::fs::create_dir_all(image::images_dir())?;
            std::fs::write(&path, resolved.to_toml())?;
            eprintln!("written to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Lint => testing::lint(),
        Cmd::Bench { quick, working_set, requests, systems, fractions, accel } => {
            let accel = match accel {
                Some(a) => a,
                None => Accel::from_env_or(Accel::Tcg)?,
            };
            let mut options = if quick {
                bench::BenchOptions::quick(accel)
            } else {
                bench::BenchOptions::full(64 << 20, accel)
            };
            if let Some(ws) = working_set {
                options.working_set = ws;
            }
            if let Some(r) = requests {
                options.requests = r;
            }
            if !systems.is_empty() {
                options.systems = systems;
            }
            if !fractions.is_empty() {
                options.fractions = fractions;
            }
            let (dir, failed) = bench::run(&options)?;
            print!("{}", std::fs::read_to_string(dir.join("report.md"))?);
            println!("\nwritten to {}", dir.display());
            if failed > 0 {
                eprintln!("{failed} measurement(s) failed: see the report");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Test { accel, host_only, filter } => {
            let accel = match accel {
                Some(a) => a,
                None => Accel::from_env_or(Accel::Tcg)?,
            };
            testing::run_all(accel, host_only, filter.as_deref())
        }
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    xtask::config::parse_size(text)
}
