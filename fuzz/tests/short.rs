//! A short fuzz run with validation on (part of `cargo test --workspace`):
//! a fixed seed and number of inputs. Asserted: no panic at all (the test
//! profile's debug assertions included), so none could abort a browser.
//! Times are not asserted (shared CI machines).

use holdfast_fuzz::{corpus::Corpus, run_with, Options};

#[test]
fn validated_repo_survives_mutated_sync_messages() {
    let corpus = Corpus::build();
    assert!(corpus.sessions.len() >= 8, "{}", corpus.describe());
    let opts = Options {
        seed: 11,
        validate: true,
        seconds: None,
        max_inputs: Some(3000),
        findings: None,
        verbose: false,
        // Generous: a loaded CI machine; inputs take well under a second.
        hang_secs: Some(60.0),
        ..Options::default()
    };
    let report = run_with(&opts, &corpus);
    println!("{}", report.summary());
    assert_eq!(report.inputs, 3000);
    assert!(
        report.tally.frames.get("accepted").copied().unwrap_or(0) > 0,
        "some mutated inputs must still be accepted, or the fuzzer tests nothing: {:?}",
        report.tally.frames
    );
    let rerun = "rerun with `cargo run --release -p holdfast-fuzz -- --seed 11 --inputs 3000` to write reproducers";
    assert!(
        report.sites.is_empty(),
        "panics with validation on ({rerun}):\n{}",
        report.summary()
    );
}

/// The fuzzer's own sync message and chunk parsers read every genuine
/// message back byte for byte (else its mutations would rewrite more than
/// they mean to).
#[test]
fn the_corpus_roundtrips_through_the_fuzzers_parsers() {
    use holdfast_fuzz::format::{ChangeBody, Chunk, SyncMsg, CHUNK_CHANGE};
    let corpus = Corpus::build();
    let mut changes = 0;
    for m in &corpus.messages {
        let parsed = SyncMsg::parse(m).expect("parses");
        assert_eq!(&parsed.encode(), m);
        for entry in &parsed.changes {
            let chunks = Chunk::parse_all(entry).expect("whole chunks");
            for c in &chunks {
                assert!(c.checksum_valid());
                if c.typ == CHUNK_CHANGE {
                    let b = ChangeBody::parse(&c.body).expect("change body parses");
                    assert_eq!(b.encode(), c.body);
                    changes += 1;
                }
            }
            let again: Vec<u8> = chunks.iter().flat_map(Chunk::encode).collect();
            assert_eq!(&again, entry);
        }
    }
    for c in &corpus.chunks {
        let (chunk, rest) = Chunk::parse(c).expect("parses");
        assert!(rest.is_empty() && chunk.checksum_valid());
        assert_eq!(
            ChangeBody::parse(&chunk.body).expect("parses").encode(),
            chunk.body
        );
    }
    assert!(changes > 0, "{}", corpus.describe());
}
