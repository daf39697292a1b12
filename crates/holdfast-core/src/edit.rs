//! Recorded edits, applied to an Automerge transaction.
//!
//! The JS wrapper records what an application's `change` callback does to a
//! draft of the document as a list of [`Op`]s (see `src/ops.rs` for the
//! JSON shape) and the repo applies them here, inside one transaction. This
//! part is target-independent so that it is tested natively; decoding the
//! ops from a `JsValue` lives in `web::ops`.
//!
//! Rules:
//! - a `path` leads from the root through map keys ([`Seg::Key`]) and list
//!   indices ([`Seg::Index`]) to an existing map or list (or, for `splice`, a
//!   text object);
//! - text positions and lengths (`splice`) count UTF-16 code units, as JS
//!   strings do, whatever the document's own text encoding is; a position
//!   that falls inside a surrogate pair is rejected;
//! - nothing panics on bad input: every problem is an [`OpError`], and the
//!   caller rolls the transaction back.

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, Prop, ReadDoc, ScalarValue, TextEncoding, Value, ROOT};

/// One step of a path: a map key or a list index.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Key(k) => write!(f, "{k:?}"),
            Seg::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A value to write. Objects are created fresh (a put of a map replaces the
/// old map with a new one, as in automerge JS).
#[derive(Debug, Clone, PartialEq)]
pub enum NewValue {
    Map(Vec<(String, NewValue)>),
    List(Vec<NewValue>),
    Text(String),
    Counter(i64),
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    Null,
    Bytes(Vec<u8>),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
}

/// One recorded edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Set a map key, or overwrite an existing list element.
    Put {
        path: Vec<Seg>,
        key: Seg,
        value: NewValue,
    },
    /// Delete a map key, or `count` list elements starting at an index
    /// (`count` is ignored for maps).
    Del {
        path: Vec<Seg>,
        key: Seg,
        count: usize,
    },
    /// Insert values into a list at `index` (`0..=len`).
    Insert {
        path: Vec<Seg>,
        index: usize,
        values: Vec<NewValue>,
    },
    /// Text splice at `path` (the text object itself): delete `del` UTF-16
    /// units at `index`, then insert `text` there.
    Splice {
        path: Vec<Seg>,
        index: usize,
        del: usize,
        text: String,
    },
    /// Add `by` (may be negative) to the counter at `key`.
    Inc { path: Vec<Seg>, key: Seg, by: i64 },
}

/// Why a recorded edit could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    #[error("malformed op: {0}")]
    BadOp(String),
    #[error("path not found: {0}")]
    PathNotFound(String),
    #[error("{path} is not a {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
    #[error("index {index} out of range at {path} (length {len})")]
    IndexOutOfRange {
        path: String,
        index: usize,
        len: usize,
    },
    #[error("automerge rejected the edit: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for OpError {
    fn from(e: automerge::AutomergeError) -> Self {
        OpError::Automerge(e.to_string())
    }
}

/// Apply `ops` in order. On error the transaction holds a partial edit: the
/// caller must roll it back (the repo's `change` does so on `Err`).
pub fn apply<T: Transactable>(tx: &mut T, ops: &[Op]) -> Result<(), OpError> {
    for op in ops {
        apply_one(tx, op)?;
    }
    Ok(())
}

fn fmt_path(path: &[Seg]) -> String {
    let mut s = String::from("/");
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            s.push('/');
        }
        match seg {
            Seg::Key(k) => s.push_str(k),
            Seg::Index(n) => s.push_str(&n.to_string()),
        }
    }
    s
}

fn with_seg(path: &[Seg], seg: &Seg) -> String {
    let mut p = path.to_vec();
    p.push(seg.clone());
    fmt_path(&p)
}

fn prop(seg: &Seg) -> Prop {
    match seg {
        Seg::Key(k) => Prop::Map(k.clone()),
        Seg::Index(i) => Prop::Seq(*i),
    }
}

fn is_map(t: ObjType) -> bool {
    matches!(t, ObjType::Map | ObjType::Table)
}

/// Follow `path` from the root to an object.
fn resolve<T: ReadDoc>(tx: &T, path: &[Seg]) -> Result<(ObjId, ObjType), OpError> {
    let mut obj = ROOT;
    let mut ty = ObjType::Map;
    for (depth, seg) in path.iter().enumerate() {
        let here = &path[..depth];
        check_container(tx, &obj, ty, here, seg)?;
        match tx.get(&obj, prop(seg))? {
            Some((Value::Object(t), id)) => {
                obj = id;
                ty = t;
            }
            Some((Value::Scalar(_), _)) => {
                return Err(OpError::WrongType {
                    path: fmt_path(&path[..=depth]),
                    expected: "map or list",
                })
            }
            None => return Err(OpError::PathNotFound(fmt_path(&path[..=depth]))),
        }
    }
    Ok((obj, ty))
}

/// `seg` must suit `obj`: a key for a map, an in-range index for a list.
fn check_container<T: ReadDoc>(
    tx: &T,
    obj: &ObjId,
    ty: ObjType,
    path: &[Seg],
    seg: &Seg,
) -> Result<(), OpError> {
    match (seg, ty) {
        (Seg::Key(_), t) if is_map(t) => Ok(()),
        (Seg::Key(_), _) => Err(OpError::WrongType {
            path: fmt_path(path),
            expected: "map",
        }),
        (Seg::Index(i), ObjType::List) => {
            let len = tx.length(obj);
            if *i < len {
                Ok(())
            } else {
                Err(OpError::IndexOutOfRange {
                    path: fmt_path(path),
                    index: *i,
                    len,
                })
            }
        }
        (Seg::Index(_), _) => Err(OpError::WrongType {
            path: fmt_path(path),
            expected: "list",
        }),
    }
}

fn apply_one<T: Transactable>(tx: &mut T, op: &Op) -> Result<(), OpError> {
    match op {
        Op::Put { path, key, value } => {
            let (obj, ty) = resolve(tx, path)?;
            check_container(tx, &obj, ty, path, key)?;
            put(tx, &obj, prop(key), value)
        }
        Op::Del { path, key, count } => {
            let (obj, ty) = resolve(tx, path)?;
            match key {
                Seg::Key(k) if is_map(ty) => {
                    // Deleting an absent key is a no-op, as `delete o.k` is in JS.
                    if tx.get(&obj, k.as_str())?.is_some() {
                        tx.delete(&obj, k.as_str())?;
                    }
                    Ok(())
                }
                Seg::Index(i) if ty == ObjType::List => {
                    let len = tx.length(&obj);
                    let end = i.checked_add(*count).filter(|e| *e <= len);
                    if end.is_none() {
                        return Err(OpError::IndexOutOfRange {
                            path: fmt_path(path),
                            index: i.saturating_add(*count),
                            len,
                        });
                    }
                    let del = isize::try_from(*count)
                        .map_err(|_| OpError::BadOp("delete count too large".into()))?;
                    tx.splice(
                        &obj,
                        *i,
                        del,
                        std::iter::empty::<automerge::hydrate::Value>(),
                    )?;
                    Ok(())
                }
                _ => Err(OpError::WrongType {
                    path: fmt_path(path),
                    expected: if matches!(key, Seg::Key(_)) {
                        "map"
                    } else {
                        "list"
                    },
                }),
            }
        }
        Op::Insert {
            path,
            index,
            values,
        } => {
            let (obj, ty) = resolve(tx, path)?;
            if ty != ObjType::List {
                return Err(OpError::WrongType {
                    path: fmt_path(path),
                    expected: "list",
                });
            }
            let len = tx.length(&obj);
            if *index > len {
                return Err(OpError::IndexOutOfRange {
                    path: fmt_path(path),
                    index: *index,
                    len,
                });
            }
            for (n, v) in values.iter().enumerate() {
                insert(tx, &obj, index + n, v)?;
            }
            Ok(())
        }
        Op::Splice {
            path,
            index,
            del,
            text,
        } => {
            let (obj, ty) = resolve(tx, path)?;
            if ty != ObjType::Text {
                return Err(OpError::WrongType {
                    path: fmt_path(path),
                    expected: "text",
                });
            }
            let current = tx.text(&obj)?;
            let enc = tx.text_encoding();
            let out_of_range = |index| OpError::IndexOutOfRange {
                path: fmt_path(path),
                index,
                len: current.encode_utf16().count(),
            };
            let end16 = index
                .checked_add(*del)
                .ok_or_else(|| out_of_range(usize::MAX))?;
            let start =
                utf16_to_units(&current, *index, enc, path)?.ok_or_else(|| out_of_range(*index))?;
            let end =
                utf16_to_units(&current, end16, enc, path)?.ok_or_else(|| out_of_range(end16))?;
            let del = isize::try_from(end - start)
                .map_err(|_| OpError::BadOp("splice delete count too large".into()))?;
            tx.splice_text(&obj, start, del, text)?;
            Ok(())
        }
        Op::Inc { path, key, by } => {
            let (obj, ty) = resolve(tx, path)?;
            check_container(tx, &obj, ty, path, key)?;
            match tx.get(&obj, prop(key))? {
                Some((Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Counter(_)) => {
                    tx.increment(&obj, prop(key), *by)?;
                    Ok(())
                }
                Some(_) => Err(OpError::WrongType {
                    path: with_seg(path, key),
                    expected: "counter",
                }),
                None => Err(OpError::PathNotFound(with_seg(path, key))),
            }
        }
    }
}

/// Convert a UTF-16 offset into `s` to the document's text units. `None`
/// when past the end; an error when inside a surrogate pair.
fn utf16_to_units(
    s: &str,
    target: usize,
    enc: TextEncoding,
    path: &[Seg],
) -> Result<Option<usize>, OpError> {
    let mut u16s = 0usize;
    let mut units = 0usize;
    for c in s.chars() {
        if u16s == target {
            return Ok(Some(units));
        }
        if u16s > target {
            return Err(OpError::BadOp(format!(
                "text position {target} at {} splits a surrogate pair",
                fmt_path(path)
            )));
        }
        u16s += c.len_utf16();
        units += match enc {
            TextEncoding::UnicodeCodePoint => 1,
            TextEncoding::Utf8CodeUnit => c.len_utf8(),
            TextEncoding::Utf16CodeUnit => c.len_utf16(),
            TextEncoding::GraphemeCluster => {
                return Err(OpError::BadOp(
                    "text splices on a grapheme-indexed document are not supported".into(),
                ))
            }
        };
    }
    if u16s == target {
        Ok(Some(units))
    } else if u16s > target {
        Err(OpError::BadOp(format!(
            "text position {target} at {} splits a surrogate pair",
            fmt_path(path)
        )))
    } else {
        Ok(None)
    }
}

fn scalar(v: &NewValue) -> Option<ScalarValue> {
    Some(match v {
        NewValue::Counter(n) => ScalarValue::counter(*n),
        NewValue::Str(s) => ScalarValue::Str(s.as_str().into()),
        NewValue::Int(n) => ScalarValue::Int(*n),
        NewValue::F64(f) => ScalarValue::F64(*f),
        NewValue::Bool(b) => ScalarValue::Boolean(*b),
        NewValue::Null => ScalarValue::Null,
        NewValue::Bytes(b) => ScalarValue::Bytes(b.clone()),
        NewValue::Timestamp(t) => ScalarValue::Timestamp(*t),
        NewValue::Map(_) | NewValue::List(_) | NewValue::Text(_) => return None,
    })
}

fn obj_type(v: &NewValue) -> Option<ObjType> {
    match v {
        NewValue::Map(_) => Some(ObjType::Map),
        NewValue::List(_) => Some(ObjType::List),
        NewValue::Text(_) => Some(ObjType::Text),
        _ => None,
    }
}

fn put<T: Transactable>(tx: &mut T, obj: &ObjId, p: Prop, v: &NewValue) -> Result<(), OpError> {
    if let Some(s) = scalar(v) {
        tx.put(obj, p, s)?;
    } else if let Some(t) = obj_type(v) {
        let child = tx.put_object(obj, p, t)?;
        fill(tx, &child, v)?;
    }
    Ok(())
}

fn insert<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    index: usize,
    v: &NewValue,
) -> Result<(), OpError> {
    if let Some(s) = scalar(v) {
        tx.insert(obj, index, s)?;
    } else if let Some(t) = obj_type(v) {
        let child = tx.insert_object(obj, index, t)?;
        fill(tx, &child, v)?;
    }
    Ok(())
}

/// Write the contents of a freshly created object.
fn fill<T: Transactable>(tx: &mut T, obj: &ObjId, v: &NewValue) -> Result<(), OpError> {
    match v {
        NewValue::Map(entries) => {
            for (k, child) in entries {
                put(tx, obj, Prop::Map(k.clone()), child)?;
            }
        }
        NewValue::List(items) => {
            for (i, child) in items.iter().enumerate() {
                insert(tx, obj, i, child)?;
            }
        }
        NewValue::Text(s) if !s.is_empty() => {
            tx.splice_text(obj, 0, 0, s)?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::AutoCommit;

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
}
