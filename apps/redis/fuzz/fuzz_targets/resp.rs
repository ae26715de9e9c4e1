//! Fuzzes the request parser and everything behind it: the input, cut in two at a point
//! chosen by its first byte, is fed to a connection with a keyspace. Nothing may panic, and
//! (with the default limits, which inputs this small never reach, and no INFO, whose
//! counters legitimately differ) the replies must be the same as when the input comes in one
//! piece. A second pass with tiny limits exercises the
//! limit errors.
#![no_main]

use app_redis::resp::Limits;
use app_redis::{Connection, Ctx, Db, NoObserver, ServerConfig, Stats};
use libfuzzer_sys::fuzz_target;

fn clock() -> u64 {
    1_700_000_000_000
}

fn run(config: &ServerConfig, stats: &Stats, chunks: &[&[u8]]) -> Vec<u8> {
    let mut db = Db::new();
    let mut stats = stats.clone();
    let mut conn = Connection::new(config);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut ctx = Ctx { config, stats: &mut stats, clock, observer: &mut NoObserver };
        conn.feed(chunk, &mut db, &mut ctx);
        out.extend(conn.take_output());
        while conn.is_paused() {
            conn.feed(&[], &mut db, &mut ctx);
            out.extend(conn.take_output());
        }
    }
    db.check_accounting().expect("memory accounting");
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else { return };
    let cut = (cut as usize * input.len()) / 255;
    let (a, b) = input.split_at(cut.min(input.len()));
    let stats = Stats::new(0, "fuzz", "none", 1);

    let config = ServerConfig::default();
    let whole = run(&config, &stats, &[input]);
    let split = run(&config, &stats, &[a, b]);
    // INFO reports byte counters that do depend on the cut.
    if !input.windows(4).any(|w| w.eq_ignore_ascii_case(b"info")) {
        assert_eq!(whole, split, "replies depend on how the input was cut");
    }

    let mut tiny = ServerConfig::default();
    tiny.limits = Limits { max_bulk: 16, max_multibulk: 4, max_inline: 32, max_query_buffer: 256 };
    tiny.list_node_bytes = 32;
    let bytes: Vec<&[u8]> = input.chunks(7).collect();
    run(&tiny, &stats, &bytes);
});
