//! Placeholder on main until the js branch lands (replaced on merge).
use automerge::{Automerge, ChangeHash};
use wasm_bindgen::JsValue;

#[derive(Debug, thiserror::Error)]
#[error("op error")]
pub struct OpError;
pub fn apply_ops(
    _tx: &mut automerge::transaction::Transaction<'_>,
    _ops: &JsValue,
) -> Result<(), OpError> {
    Ok(())
}
pub fn to_js(_doc: &Automerge, _heads: Option<&[ChangeHash]>) -> Result<JsValue, JsValue> {
    Ok(JsValue::NULL)
}
pub fn to_js_draft(_doc: &Automerge) -> Result<JsValue, JsValue> {
    Ok(JsValue::NULL)
}
pub fn patches_to_js(_patches: &[automerge::Patch]) -> JsValue {
    JsValue::NULL
}
