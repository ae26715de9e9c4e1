//! The shipped traces (`traces/`) replayed through each policy over the simulated pager:
//! the orderings the policies exist for, and the accounting that must hold whatever the
//! trace.

#[path = "../examples/replay/sim.rs"]
mod sim;

use sim::{Outcome, Setup};

fn replay(file: &str) -> Vec<Outcome> {
    let path = format!("{}/traces/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let trace = sim::parse(file, &text).unwrap();
    let outcomes = sim::replay_all(&trace, &Setup::default());
    eprint!("{}", sim::table(&[(file.to_string(), outcomes.clone())]));
    for o in &outcomes {
        // An access is a demand fault, a hit, or finds its page still local; every
        // prefetch is a hit or a waste.
        assert!(o.demand_faults + o.hits <= o.accesses, "{file} {}: {o:?}", o.policy);
        assert_eq!(o.hits + o.waste, o.pages_fetched - o.demand_faults, "{file} {}", o.policy);
        assert_eq!(o.wire_bytes, o.pages_fetched * 4096);
    }
    outcomes
}

fn demand(outcomes: &[Outcome], policy: &str) -> u64 {
    outcomes.iter().find(|o| o.policy == policy).expect("policy replayed").demand_faults
}

#[test]
fn a_sequential_trace_takes_a_fraction_of_the_faults_with_readahead() {
    for file in ["sequential.trace", "reverse.trace", "membench-sequential.trace"] {
        let o = replay(file);
        let none = demand(&o, "none");
        assert!(demand(&o, "sequential") * 4 < none, "{file}: {o:#?}");
        assert!(demand(&o, "majority") * 4 < none, "{file}: {o:#?}");
    }
}

#[test]
fn a_strided_trace_is_majoritys() {
    for file in ["strided.trace", "membench-strided.trace"] {
        let o = replay(file);
        let (none, seq, maj) =
            (demand(&o, "none"), demand(&o, "sequential"), demand(&o, "majority"));
        assert!(maj * 4 < seq, "{file}: {o:#?}");
        assert!(seq * 10 >= none * 9, "readahead cannot follow a stride: {file}: {o:#?}");
    }
}

#[test]
fn random_traces_gain_little_from_any_policy() {
    for file in ["random.trace", "membench-zipfian.trace"] {
        let o = replay(file);
        let none = demand(&o, "none");
        for policy in ["sequential", "majority"] {
            assert!(demand(&o, policy) * 10 >= none * 8, "{file} {policy}: {o:#?}");
        }
        assert_eq!(o[0].pages_fetched, none, "none fetches only what faults");
    }
}

#[test]
fn traces_parse_from_files_and_console_logs() {
    let t = sim::parse("t", "# comment\n1 2 3\n4 # five\n").unwrap();
    assert_eq!(t.pages, [1, 2, 3, 4]);
    let log = "[0.1] INFO boot\nmembench: pattern=x\ntrace: # 3 kept\ntrace: 7 8\ntrace: 9\n";
    assert_eq!(sim::parse("log", log).unwrap().pages, [7, 8, 9]);
    assert!(sim::parse("bad", "1 x 3").unwrap_err().contains("bad:1: `x`"));
    assert!(sim::parse("empty", "# nothing\n").is_err());
}
