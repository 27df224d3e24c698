//! Delivery helpers: a [`WatchEvent`] as a JSON message and as a Server-Sent Events frame,
//! so an HTTP handler (axum, hyper) streams a watch in a few lines.

use super::WatchEvent;
use crate::Value;

impl WatchEvent {
    /// The event as a JSON object: `{"op", "versionstamp", "key", "row", "changed",
    /// "position", "expired"}` (absent parts omitted).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("op".into(), self.op.as_str().into());
        m.insert("versionstamp".into(), self.versionstamp.to_string().into());
        if self.key != Value::Null {
            m.insert("key".into(), crate::json::to_json(&self.key));
        }
        if let Some(r) = &self.row {
            m.insert("row".into(), crate::json::to_json(r));
        }
        if !self.changed.is_empty() {
            m.insert("changed".into(), self.changed.clone().into());
        }
        if let Some(p) = self.position {
            m.insert("position".into(), p.into());
        }
        if self.expired {
            m.insert("expired".into(), true.into());
        }
        serde_json::Value::Object(m)
    }

    /// The event as one SSE frame: `id:` the versionstamp (a reconnecting client's
    /// `Last-Event-ID`), `event:` the operation, `data:` the JSON message, a blank line.
    pub fn to_sse(&self) -> String {
        format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            self.versionstamp,
            self.op.as_str(),
            self.to_json()
        )
    }
}
