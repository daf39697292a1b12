use super::*;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};

fn k(s: &str) -> Seg {
    Seg::Key(s.into())
}
fn i(n: usize) -> Seg {
    Seg::Index(n)
}
fn s(v: &str) -> NewValue {
    NewValue::Str(v.into())
}

fn doc_with(ops: &[Op]) -> AutoCommit {
    let mut d = AutoCommit::new();
    apply(&mut d, ops).expect("ops apply");
    d
}

fn put(path: Vec<Seg>, key: Seg, value: NewValue) -> Op {
    Op::Put { path, key, value }
}

/// A readable rendering of the document for assertions.
fn show(d: &AutoCommit) -> String {
    fn obj(d: &AutoCommit, id: &ObjId, t: ObjType) -> String {
        match t {
            ObjType::Map | ObjType::Table => {
                let items: Vec<String> = d
                    .map_range(id, ..)
                    .map(|it| format!("{}:{}", it.key, val(d, it.id(), it.value.into_value())))
                    .collect();
                format!("{{{}}}", items.join(","))
            }
            ObjType::List => {
                let items: Vec<String> = d
                    .list_range(id, ..)
                    .map(|it| val(d, it.id(), it.value.into_value()))
                    .collect();
                format!("[{}]", items.join(","))
            }
            ObjType::Text => format!("T{:?}", d.text(id).unwrap()),
        }
    }
    fn val(d: &AutoCommit, id: ObjId, v: Value<'_>) -> String {
        match v {
            Value::Object(t) => obj(d, &id, t),
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(s) => format!("{s:?}"),
                ScalarValue::Counter(c) => format!("C{}", i64::from(c)),
                ScalarValue::Timestamp(t) => format!("D{t}"),
                ScalarValue::Bytes(b) => format!("B{b:?}"),
                ScalarValue::F64(f) => format!("{f}"),
                other => other.to_string(),
            },
        }
    }
    obj(d, &ROOT, ObjType::Map)
}

#[test]
fn put_nested_values_of_every_kind() {
    let d = doc_with(&[put(
        vec![],
        k("a"),
        NewValue::Map(vec![
            ("s".into(), s("x")),
            ("i".into(), NewValue::Int(-3)),
            ("f".into(), NewValue::F64(1.5)),
            ("b".into(), NewValue::Bool(true)),
            ("n".into(), NewValue::Null),
            ("by".into(), NewValue::Bytes(vec![1, 2])),
            ("t".into(), NewValue::Timestamp(1000)),
            ("c".into(), NewValue::Counter(5)),
            ("tx".into(), NewValue::Text("hé".into())),
            (
                "l".into(),
                NewValue::List(vec![NewValue::Int(1), NewValue::Map(vec![])]),
            ),
        ]),
    )]);
    assert_eq!(
        show(&d),
        r#"{a:{b:true,by:B[1, 2],c:C5,f:1.5,i:-3,l:[1,{}],n:null,s:"x",t:D1000,tx:T"hé"}}"#
    );
}

#[test]
fn list_insert_overwrite_and_delete() {
    let mut d = doc_with(&[put(vec![], k("l"), NewValue::List(vec![]))]);
    let l = || vec![k("l")];
    apply(
        &mut d,
        &[
            Op::Insert {
                path: l(),
                index: 0,
                values: vec![s("a"), s("b"), s("c"), s("d")],
            },
            put(l(), i(1), s("B")),
            Op::Del {
                path: l(),
                key: i(2),
                count: 2,
            },
            Op::Insert {
                path: l(),
                index: 0,
                values: vec![NewValue::List(vec![s("x")])],
            },
            put(vec![k("l"), i(0)], i(0), s("y")),
        ],
    )
    .unwrap();
    assert_eq!(show(&d), r#"{l:[["y"],"a","B"]}"#);
}

#[test]
fn map_delete_including_absent_key() {
    let mut d = doc_with(&[put(vec![], k("a"), s("1")), put(vec![], k("b"), s("2"))]);
    apply(
        &mut d,
        &[
            Op::Del {
                path: vec![],
                key: k("a"),
                count: 1,
            },
            Op::Del {
                path: vec![],
                key: k("zz"),
                count: 1,
            },
        ],
    )
    .unwrap();
    assert_eq!(show(&d), r#"{b:"2"}"#);
}

#[test]
fn text_splice_counts_utf16_units() {
    // "a😀b": the emoji is 2 UTF-16 units but 1 code point.
    let mut d = doc_with(&[put(vec![], k("t"), NewValue::Text("a😀b".into()))]);
    let t = || vec![k("t")];
    apply(
        &mut d,
        &[
            Op::Splice {
                path: t(),
                index: 3,
                del: 1,
                text: "B!".into(),
            },
            Op::Splice {
                path: t(),
                index: 1,
                del: 2,
                text: "-".into(),
            },
            Op::Splice {
                path: t(),
                index: 0,
                del: 0,
                text: ">".into(),
            },
        ],
    )
    .unwrap();
    assert_eq!(show(&d), r#"{t:T">a-B!"}"#);
    let bad = apply(
        &mut d,
        &[Op::Splice {
            path: t(),
            index: 99,
            del: 0,
            text: "x".into(),
        }],
    );
    assert!(
        matches!(bad, Err(OpError::IndexOutOfRange { .. })),
        "{bad:?}"
    );
}

#[test]
fn splice_inside_surrogate_pair_is_rejected() {
    let mut d = doc_with(&[put(vec![], k("t"), NewValue::Text("😀".into()))]);
    let r = apply(
        &mut d,
        &[Op::Splice {
            path: vec![k("t")],
            index: 1,
            del: 0,
            text: "x".into(),
        }],
    );
    assert!(matches!(r, Err(OpError::BadOp(_))), "{r:?}");
}

#[test]
fn counters_increment_and_reject_non_counters() {
    let mut d = doc_with(&[
        put(vec![], k("c"), NewValue::Counter(1)),
        put(vec![], k("n"), NewValue::Int(1)),
    ]);
    apply(
        &mut d,
        &[
            Op::Inc {
                path: vec![],
                key: k("c"),
                by: 10,
            },
            Op::Inc {
                path: vec![],
                key: k("c"),
                by: -3,
            },
        ],
    )
    .unwrap();
    assert_eq!(show(&d), "{c:C8,n:1}");
    let r = apply(
        &mut d,
        &[Op::Inc {
            path: vec![],
            key: k("n"),
            by: 1,
        }],
    );
    assert!(
        matches!(
            r,
            Err(OpError::WrongType {
                expected: "counter",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn bad_paths_are_errors_not_panics() {
    let mut d = doc_with(&[
        put(vec![], k("l"), NewValue::List(vec![NewValue::Int(1)])),
        put(vec![], k("s"), s("x")),
        put(vec![], k("t"), NewValue::Text("x".into())),
    ]);
    let cases: Vec<(Op, &str)> = vec![
        (put(vec![k("nope")], k("a"), s("x")), "PathNotFound"),
        (put(vec![k("s")], k("a"), s("x")), "WrongType"),
        (put(vec![k("l")], k("a"), s("x")), "WrongType"),
        (put(vec![], i(0), s("x")), "WrongType"),
        (put(vec![k("l")], i(1), s("x")), "IndexOutOfRange"),
        (put(vec![k("l"), i(5)], k("a"), s("x")), "IndexOutOfRange"),
        (put(vec![k("t")], k("a"), s("x")), "WrongType"),
        (
            Op::Insert {
                path: vec![k("l")],
                index: 2,
                values: vec![s("x")],
            },
            "IndexOutOfRange",
        ),
        (
            Op::Insert {
                path: vec![],
                index: 0,
                values: vec![s("x")],
            },
            "WrongType",
        ),
        (
            Op::Del {
                path: vec![k("l")],
                key: i(0),
                count: 2,
            },
            "IndexOutOfRange",
        ),
        (
            Op::Del {
                path: vec![k("l")],
                key: i(0),
                count: usize::MAX,
            },
            "IndexOutOfRange",
        ),
        (
            Op::Splice {
                path: vec![k("l")],
                index: 0,
                del: 0,
                text: "x".into(),
            },
            "WrongType",
        ),
        (
            Op::Splice {
                path: vec![k("t")],
                index: 0,
                del: usize::MAX,
                text: "x".into(),
            },
            "IndexOutOfRange",
        ),
        (
            Op::Inc {
                path: vec![],
                key: k("missing"),
                by: 1,
            },
            "PathNotFound",
        ),
    ];
    for (op, want) in cases {
        let before = show(&d);
        let r = apply(&mut d, std::slice::from_ref(&op));
        let got = format!("{r:?}");
        assert!(got.contains(want), "{op:?}: wanted {want}, got {got}");
        assert_eq!(show(&d), before, "{op:?} changed the doc");
    }
}

#[test]
fn applies_inside_a_real_transaction() {
    let mut doc = automerge::Automerge::new();
    let mut tx = doc.transaction();
    apply(&mut tx, &[put(vec![], k("x"), NewValue::Int(1))]).unwrap();
    tx.commit();
    assert_eq!(doc.get_heads().len(), 1);
}

#[test]
fn marks_count_utf16_units_and_unmark_removes_them() {
    // "a😀bc": positions 0..5 in UTF-16 units.
    let mut d = doc_with(&[put(vec![], k("t"), NewValue::Text("a😀bc".into()))]);
    let mark = |start, end, name: &str, value| Op::Mark {
        path: vec![k("t")],
        start,
        end,
        name: name.into(),
        value,
        expand: ExpandMark::After,
    };
    apply(
        &mut d,
        &[
            mark(1, 4, "bold", Some(NewValue::Bool(true))),
            mark(0, 5, "link", Some(s("https://x"))),
            mark(0, 1, "link", None),
        ],
    )
    .unwrap();
    let t = match d.get(ROOT, "t").unwrap() {
        Some((_, id)) => id,
        None => panic!("no text"),
    };
    let mut marks: Vec<(String, String, usize, usize)> = d
        .marks(&t)
        .unwrap()
        .iter()
        .map(|m| (m.name().to_string(), m.value().to_string(), m.start, m.end))
        .collect();
    marks.sort();
    // Read back in the document's own units (code points natively: the
    // emoji is one): bold on "😀b", link on "😀bc".
    assert_eq!(
        marks,
        vec![
            ("bold".into(), "true".into(), 1, 3),
            ("link".into(), "\"https://x\"".into(), 1, 4),
        ]
    );
    for bad in [
        mark(2, 3, "x", Some(s("v"))), // inside the surrogate pair
        mark(4, 2, "x", Some(s("v"))), // end before start
        mark(0, 9, "x", Some(s("v"))), // past the end
        mark(0, 1, "x", Some(NewValue::Counter(1))), // not a mark value
        mark(0, 1, "x", Some(NewValue::List(vec![]))), // not a scalar
    ] {
        assert!(
            apply(&mut d, std::slice::from_ref(&bad)).is_err(),
            "{bad:?}"
        );
    }
    let on_map = apply(
        &mut d,
        &[Op::Mark {
            path: vec![],
            start: 0,
            end: 0,
            name: "x".into(),
            value: None,
            expand: ExpandMark::None,
        }],
    );
    assert!(
        matches!(on_map, Err(OpError::WrongType { .. })),
        "{on_map:?}"
    );
}
