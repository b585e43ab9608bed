//! Stream profiles: a TOML file with several `[[stream]]` tables, each a stream described
//! with the same names as `skiff gen`'s flags (`src_ip`, `rate`, `size`, ...), as TRex's
//! stateless profiles describe several streams. Top-level keys set what all streams share.
//!
//! ```toml
//! dst_mac = "02:00:c6:12:00:02"   # optional: else --dst-mac or ARP
//! rate_layer = "l1"               # optional
//!
//! [[stream]]
//! name = "voice"
//! template = "udp4"
//! dst_ip = "198.18.0.2"
//! dscp = 46
//! size = 128
//! rate = "10kpps"
//!
//! [[stream]]
//! name = "bulk"
//! dst_ip = "198.18.0.2"
//! size = "imix"
//! flows = 64
//! rate = "50Mbit"
//! ```
//!
//! Every error names the file, the line and the field.

use std::path::Path;

use anyhow::{bail, Result};

use crate::stream::{StreamDef, FIELDS};

/// Top-level settings of a profile.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub dst_mac: Option<String>,
    pub src_mac: Option<String>,
    pub rate_layer: Option<String>,
    pub qdisc: Option<String>,
    pub streams: Vec<StreamDef>,
    /// The file's text, to find a field's line for an error found later.
    text: String,
    path: String,
}

const TOP: &[&str] = &["dst_mac", "src_mac", "rate_layer", "qdisc", "stream"];

/// Most streams a profile may have: each has its own backlog of 64 frames in every queue's
/// 4096-frame UMEM, and 32 × 64 = half of it.
pub const MAX_STREAMS: usize = 32;

fn value_string(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read profile {}: {e}", path.display()))?;
        Profile::parse(&text, &path.display().to_string())
    }

    /// Parses a profile's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Profile> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            // toml's message carries the line, the column and a caret under the spot.
            anyhow::anyhow!("profile {path}: {}", e.to_string().trim_end())
        })?;
        let mut p = Profile {
            text: text.to_owned(),
            path: path.to_owned(),
            ..Profile::default()
        };
        for (k, v) in &table {
            if !TOP.contains(&k.as_str()) {
                bail!(
                    "profile {path}:{}: unknown key {k:?} (top-level keys: {}; streams go in [[stream]] tables)",
                    p.line_of(None, k),
                    TOP.join(", ")
                );
            }
            if k == "stream" {
                continue;
            }
            let s = value_string(v).ok_or_else(|| {
                anyhow::anyhow!(
                    "profile {path}:{}: {k} must be a string",
                    p.line_of(None, k)
                )
            })?;
            match k.as_str() {
                "dst_mac" => p.dst_mac = Some(s),
                "src_mac" => p.src_mac = Some(s),
                "rate_layer" => p.rate_layer = Some(s),
                _ => p.qdisc = Some(s),
            }
        }
        let Some(streams) = table.get("stream") else {
            bail!("profile {path}: no [[stream]] tables: a profile describes at least one stream");
        };
        let Some(streams) = streams.as_array() else {
            bail!(
                "profile {path}:{}: `stream` must be an array of tables: write [[stream]]",
                p.line_of(None, "stream")
            );
        };
        if streams.len() > MAX_STREAMS {
            bail!(
                "profile {path}: {} streams; at most {MAX_STREAMS}",
                streams.len()
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, st) in streams.iter().enumerate() {
            let Some(t) = st.as_table() else {
                bail!("profile {path}: stream {} is not a table", i + 1);
            };
            let mut def = StreamDef::default();
            for (k, v) in t {
                let line = p.line_of(Some(i), k);
                if !FIELDS.contains(&k.as_str()) {
                    bail!(
                        "profile {path}:{line}: stream {}: unknown field {k:?} (fields: {})",
                        i + 1,
                        FIELDS.join(", ")
                    );
                }
                let s = value_string(v).ok_or_else(|| {
                    anyhow::anyhow!(
                        "profile {path}:{line}: stream {}: field {k} must be a string, a number or a boolean",
                        i + 1
                    )
                })?;
                def.set(k, s);
            }
            let name = def.name.clone().unwrap_or_else(|| format!("stream{i}"));
            if !names.insert(name.clone()) {
                bail!(
                    "profile {path}:{}: stream {}: the name {name:?} is used twice",
                    p.line_of(Some(i), "name"),
                    i + 1
                );
            }
            p.streams.push(def);
        }
        Ok(p)
    }

    /// "file:line: stream N (name): field: message", for a field that failed to resolve.
    pub fn field_error(&self, stream: usize, field: &str, msg: &str) -> String {
        let name = self.streams[stream]
            .name
            .clone()
            .unwrap_or_else(|| format!("stream{stream}"));
        format!(
            "profile {}:{}: stream {} ({name}): field {field}: {msg}",
            self.path,
            self.line_of(Some(stream), field),
            stream + 1
        )
    }

    /// The 1-based line where `key` is set, in stream table `stream` (None: at the top
    /// level). The line of the table's header when the key is not written there, or 1.
    fn line_of(&self, stream: Option<usize>, key: &str) -> usize {
        let mut section: Option<usize> = None; // None: top level; Some(i): i-th [[stream]]
        let mut seen = 0usize;
        let mut header_line = 1;
        let mut other_table = false;
        for (n, raw) in self.text.lines().enumerate() {
            let line = raw.trim();
            if line.starts_with("[[") {
                other_table = line
                    .trim_start_matches("[[")
                    .trim_start()
                    .split([']', ' '])
                    .next()
                    != Some("stream");
                if !other_table {
                    section = Some(seen);
                    seen += 1;
                    if section == stream {
                        header_line = n + 1;
                    }
                }
                if stream.is_none() && key == "stream" && !other_table {
                    return n + 1;
                }
                continue;
            }
            if line.starts_with('[') {
                other_table = true;
                continue;
            }
            if other_table || section != stream {
                continue;
            }
            if let Some((k, _)) = line.split_once('=') {
                if k.trim().trim_matches('"') == key {
                    return n + 1;
                }
            }
        }
        header_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
dst_mac = "02:00:c6:12:00:02"

[[stream]]
name = "voice"
dst_ip = "198.18.0.2"
dscp = 46
rate = "10kpps"

[[stream]]
name = "bulk"
dst_ip = "198.18.0.2"
size = "imix"
flows = 64
"#;

    #[test]
    fn parses_streams_and_top_level() {
        let p = Profile::parse(GOOD, "t.toml").unwrap();
        assert_eq!(p.dst_mac.as_deref(), Some("02:00:c6:12:00:02"));
        assert_eq!(p.streams.len(), 2);
        assert_eq!(p.streams[0].dscp.as_deref(), Some("46"));
        assert_eq!(p.streams[1].flows.as_deref(), Some("64"));
        assert_eq!(p.line_of(Some(1), "size"), 13);
        assert_eq!(p.line_of(Some(0), "rate"), 8);
        assert!(p
            .field_error(1, "size", "bad")
            .starts_with("profile t.toml:13: stream 2 (bulk): field size"));
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = Profile::parse("[[stream]]\nname = \"a\"\nrat = \"1k\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:3") && e.contains("\"rat\""), "{e}");
        let e = Profile::parse("[[stream]]\nname = \"a\"\nrate = \n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        let e = Profile::parse("dst_mac = \"x\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no [[stream]]"), "{e}");
        let e = Profile::parse(
            "[[stream]]\nname = \"a\"\n[[stream]]\nname = \"a\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x.toml:4") && e.contains("twice"), "{e}");
        let e = Profile::parse("bogus = 1\n[[stream]]\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:1") && e.contains("bogus"), "{e}");
        let e = Profile::parse("[[stream]]\nsize = [1, 2]\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:2") && e.contains("size"), "{e}");
    }
}
