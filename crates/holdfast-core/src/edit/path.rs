//! Where an edit lands: following a path from the root to an object,
//! checking a key or index against it, and converting UTF-16 text positions
//! to the document's text units. Every failure is an [`OpError`].

use automerge::{ObjId, ObjType, Prop, ReadDoc, TextEncoding, Value, ROOT};

use super::{OpError, Seg};

pub(super) fn fmt_path(path: &[Seg]) -> String {
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

pub(super) fn with_seg(path: &[Seg], seg: &Seg) -> String {
    let mut p = path.to_vec();
    p.push(seg.clone());
    fmt_path(&p)
}

pub(super) fn prop(seg: &Seg) -> Prop {
    match seg {
        Seg::Key(k) => Prop::Map(k.clone()),
        Seg::Index(i) => Prop::Seq(*i),
    }
}

pub(super) fn is_map(t: ObjType) -> bool {
    matches!(t, ObjType::Map | ObjType::Table)
}

/// Follow `path` from the root to an object.
pub fn resolve<T: ReadDoc>(tx: &T, path: &[Seg]) -> Result<(ObjId, ObjType), OpError> {
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
pub(super) fn check_container<T: ReadDoc>(
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

/// Convert a UTF-16 offset into `s` to the document's text units. `None`
/// when past the end; an error when inside a surrogate pair.
pub(super) fn utf16_to_units(
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
