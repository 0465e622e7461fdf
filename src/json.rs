//! A tiny JSON writer (objects built in order; no dependency needed).

#![forbid(unsafe_code)]

use std::fmt::Write as _;

pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds `{"k":v,...}` with values already encoded.
#[derive(Default)]
pub struct Object(Vec<(String, String)>);

impl Object {
    pub fn new() -> Self {
        Object(Vec::new())
    }
    pub fn raw(mut self, k: &str, v: String) -> Self {
        self.0.push((k.to_string(), v));
        self
    }
    pub fn str(self, k: &str, v: &str) -> Self {
        self.raw(k, string(v))
    }
    pub fn opt_str(self, k: &str, v: Option<&str>) -> Self {
        self.raw(k, v.map(string).unwrap_or_else(|| "null".into()))
    }
    pub fn num(self, k: &str, v: u64) -> Self {
        self.raw(k, v.to_string())
    }
    pub fn opt_num(self, k: &str, v: Option<u64>) -> Self {
        self.raw(k, v.map(|n| n.to_string()).unwrap_or_else(|| "null".into()))
    }
    pub fn bool(self, k: &str, v: bool) -> Self {
        self.raw(k, v.to_string())
    }
    pub fn finish(self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&string(k));
            s.push(':');
            s.push_str(v);
        }
        s.push('}');
        s
    }
}

pub fn array(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_hostile() {
        assert_eq!(
            string("a\"b\\c\n\u{1}\u{2028}é"),
            "\"a\\\"b\\\\c\\n\\u0001\\u2028é\""
        );
        assert_eq!(
            Object::new()
                .str("k", "v")
                .num("n", 1)
                .opt_num("x", None)
                .finish(),
            "{\"k\":\"v\",\"n\":1,\"x\":null}"
        );
    }
}
