//! One CSV line split into its fields.

use std::borrow::Cow;

/// Splits one line into fields (see the module's documentation for the rules).
pub(super) fn split_fields(line: &str) -> std::result::Result<Vec<Cow<'_, str>>, &'static str> {
    let bytes = line.as_bytes();
    let len = bytes.len();
    let is_space = |b: u8| b == b' ' || b == b'\t';
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        while i < len && is_space(bytes[i]) {
            i += 1;
        }
        if i < len && bytes[i] == b'"' {
            i += 1;
            let mut value = String::new();
            let mut start = i;
            let mut closed = false;
            while i < len {
                if bytes[i] == b'"' {
                    value.push_str(&line[start..i]);
                    if i + 1 < len && bytes[i + 1] == b'"' {
                        value.push('"');
                        i += 2;
                        start = i;
                        continue;
                    }
                    i += 1;
                    closed = true;
                    break;
                }
                i += 1;
            }
            if !closed {
                return Err(
                    "a quoted field is not closed (fields spanning lines are not supported)",
                );
            }
            while i < len && is_space(bytes[i]) {
                i += 1;
            }
            fields.push(Cow::Owned(value.trim().to_string()));
            if i == len {
                break;
            }
            if bytes[i] != b',' {
                return Err("text follows a closing quote; quote the whole field");
            }
            i += 1;
        } else {
            let end = line[i..].find(',').map_or(len, |p| i + p);
            fields.push(Cow::Borrowed(line[i..end].trim()));
            if end == len {
                break;
            }
            i = end + 1;
        }
    }
    Ok(fields)
}
