//! Properties of the RESP parser and of a connection: a valid stream split anywhere parses
//! (and is answered) exactly as when it comes whole; random bytes never panic.

use app_redis::resp::{Args, Limits, RequestParser};
use app_redis::{Connection, Ctx, Db, NoObserver, ServerConfig, Stats};
use proptest::prelude::*;

/// A request: multibulk with any bytes, or inline with plain words.
#[derive(Debug, Clone)]
enum Request {
    Multibulk(Vec<Vec<u8>>),
    Inline(Vec<String>),
}

impl Request {
    fn encode(&self) -> Vec<u8> {
        match self {
            Request::Multibulk(args) => {
                let mut out = format!("*{}\r\n", args.len()).into_bytes();
                for a in args {
                    out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    out.extend_from_slice(a);
                    out.extend_from_slice(b"\r\n");
                }
                out
            }
            Request::Inline(words) => format!("{}\r\n", words.join(" ")).into_bytes(),
        }
    }

    fn args(&self) -> Vec<Vec<u8>> {
        match self {
            Request::Multibulk(args) => args.clone(),
            Request::Inline(words) => words.iter().map(|w| w.as_bytes().to_vec()).collect(),
        }
    }
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6)
            .prop_map(Request::Multibulk),
        prop::collection::vec("[a-zA-Z0-9_:-]{1,12}", 1..5).prop_map(Request::Inline),
    ]
}

/// Feeds `chunks` to a parser as a connection would; every argument list parsed.
fn parse_chunks(chunks: &[&[u8]]) -> Result<Vec<Vec<Vec<u8>>>, app_redis::resp::ProtocolError> {
    let mut parser = RequestParser::new(Limits::default());
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(req) = parser.parse(&buf)? {
            let args: Vec<Vec<u8>> = match req.args {
                Args::Ranges => parser.ranges().iter().map(|r| buf[r.clone()].to_vec()).collect(),
                Args::Words => parser.words().to_vec(),
            };
            if !args.is_empty() {
                out.push(args);
            }
            buf.drain(..req.consumed);
        }
    }
    Ok(out)
}

/// Cuts `bytes` at the given fractions.
fn split<'a>(bytes: &'a [u8], cuts: &[f64]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|f| (f * bytes.len() as f64) as usize).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

fn clock() -> u64 {
    1_000
}

/// The replies of a fresh server to `chunks`, fed one at a time.
fn replies(chunks: &[&[u8]]) -> Vec<u8> {
    let config = ServerConfig::default();
    let mut db = Db::new();
    let mut stats = Stats::new(0, "test", "none", 1);
    let mut conn = Connection::new(&config);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut ctx = Ctx { config: &config, stats: &mut stats, clock, observer: &mut NoObserver };
        conn.feed(chunk, &mut db, &mut ctx);
        out.extend(conn.take_output());
        while conn.is_paused() {
            conn.feed(&[], &mut db, &mut ctx);
            out.extend(conn.take_output());
        }
    }
    out
}

/// A script of data commands with arguments from the strategy's bytes.
fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let key = prop::sample::select(vec![b"a".to_vec(), b"b".to_vec(), b"l".to_vec()]);
    let value = prop::collection::vec(any::<u8>(), 0..50);
    prop_oneof![
        (key.clone(), value.clone()).prop_map(|(k, v)| vec![b"SET".to_vec(), k, v]),
        key.clone().prop_map(|k| vec![b"GET".to_vec(), k]),
        (key.clone(), value.clone()).prop_map(|(k, v)| vec![b"APPEND".to_vec(), k, v]),
        key.clone().prop_map(|k| vec![b"INCR".to_vec(), k]),
        (key.clone(), value.clone()).prop_map(|(k, v)| vec![b"RPUSH".to_vec(), k, v]),
        (key.clone(), value).prop_map(|(k, v)| vec![b"LPUSH".to_vec(), k, v]),
        key.clone().prop_map(|k| vec![b"LPOP".to_vec(), k]),
        key.clone().prop_map(|k| vec![b"LRANGE".to_vec(), k, b"0".to_vec(), b"-1".to_vec()]),
        key.prop_map(|k| vec![b"DEL".to_vec(), k]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_split_parses_identically(
        reqs in prop::collection::vec(request(), 1..10),
        cuts in prop::collection::vec(0.0f64..1.0, 0..12),
    ) {
        let stream: Vec<u8> = reqs.iter().flat_map(Request::encode).collect();
        let want: Vec<Vec<Vec<u8>>> = reqs.iter().map(Request::args).collect();
        prop_assert_eq!(parse_chunks(&[&stream]).unwrap(), want.clone());
        prop_assert_eq!(parse_chunks(&split(&stream, &cuts)).unwrap(), want.clone());
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(parse_chunks(&bytes).unwrap(), want);
    }

    #[test]
    fn any_split_is_answered_identically(
        cmds in prop::collection::vec(command(), 1..30),
        cuts in prop::collection::vec(0.0f64..1.0, 0..12),
    ) {
        let stream: Vec<u8> = cmds
            .iter()
            .flat_map(|c| Request::Multibulk(c.clone()).encode())
            .collect();
        let whole = replies(&[&stream]);
        prop_assert_eq!(replies(&split(&stream, &cuts)), whole.clone());
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(replies(&bytes), whole);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(0.0f64..1.0, 0..8),
    ) {
        let _ = parse_chunks(&split(&bytes, &cuts));
        let _ = replies(&split(&bytes, &cuts));
    }

    #[test]
    fn protocol_shaped_noise_never_panics(
        parts in prop::collection::vec(
            prop_oneof![
                Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
                Just(b"\r".to_vec()), Just(b"\n".to_vec()), Just(b"\"".to_vec()), Just(b"'".to_vec()),
                Just(b"\\x4".to_vec()), Just(b"-1".to_vec()), Just(b"0".to_vec()), Just(b" ".to_vec()),
                (0u32..100).prop_map(|n| n.to_string().into_bytes()),
                "[a-zA-Z]{1,6}".prop_map(String::into_bytes),
            ],
            0..200,
        ),
        cuts in prop::collection::vec(0.0f64..1.0, 0..8),
    ) {
        let bytes: Vec<u8> = parts.concat();
        let _ = parse_chunks(&split(&bytes, &cuts));
        let _ = replies(&split(&bytes, &cuts));
    }
}
