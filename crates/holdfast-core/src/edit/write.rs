//! Applying recorded edits to a transaction, one [`Op`] at a time, and
//! writing new values (objects are created fresh, then filled).

use automerge::marks::Mark;
use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, Prop, ScalarValue, Value};

use super::path::{check_container, fmt_path, is_map, prop, resolve, utf16_to_units, with_seg};
use super::{NewValue, Op, OpError, Seg};

/// Apply `ops` in order. On error the transaction holds a partial edit: the
/// caller must roll it back (the repo's `change` does so on `Err`).
pub fn apply<T: Transactable>(tx: &mut T, ops: &[Op]) -> Result<(), OpError> {
    for op in ops {
        apply_one(tx, op)?;
    }
    Ok(())
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
            let obj = resolve_as(tx, path, ObjType::List, "list")?;
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
            let obj = resolve_as(tx, path, ObjType::Text, "text")?;
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
        Op::Mark {
            path,
            start,
            end,
            name,
            value,
            expand,
        } => {
            let obj = resolve_as(tx, path, ObjType::Text, "text")?;
            if end < start {
                return Err(OpError::BadOp(format!(
                    "mark end {end} is before its start {start}"
                )));
            }
            let current = tx.text(&obj)?;
            let enc = tx.text_encoding();
            let at = |i: usize| {
                utf16_to_units(&current, i, enc, path)?.ok_or_else(|| OpError::IndexOutOfRange {
                    path: fmt_path(path),
                    index: i,
                    len: current.encode_utf16().count(),
                })
            };
            let (from, to) = (at(*start)?, at(*end)?);
            match value {
                Some(v) => {
                    let v = scalar(v).filter(|v| !v.is_counter()).ok_or_else(|| {
                        OpError::BadOp(format!(
                            "mark {name:?}: a value must be a string, number, boolean, null, bytes or date"
                        ))
                    })?;
                    tx.mark(&obj, Mark::new(name.clone(), v, from, to), *expand)?;
                }
                None => tx.unmark(&obj, name, from, to, *expand)?,
            }
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

/// The object at `path`, which must be of type `want` (`name` in the error).
fn resolve_as<T: Transactable>(
    tx: &T,
    path: &[Seg],
    want: ObjType,
    name: &'static str,
) -> Result<ObjId, OpError> {
    let (obj, ty) = resolve(tx, path)?;
    if ty != want {
        return Err(OpError::WrongType {
            path: fmt_path(path),
            expected: name,
        });
    }
    Ok(obj)
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
