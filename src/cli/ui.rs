//! Terminal output as Consul's commands produce it: lines on stdout and stderr,
//! tables laid out like `ryanuber/columnize` and Go's `text/tabwriter`, and Go's
//! `%q` quoting. Scripts parse this text, so the layouts follow Go's byte for byte.

use std::io::Write;

/// Writes one line to stdout. A closed pipe (`consul kv export | head`) is not an
/// error worth a panic, so write failures are ignored.
pub fn output(line: &str) {
    output_bytes(line.as_bytes());
}

/// Writes raw bytes and a newline to stdout: KV values need not be UTF-8.
pub fn output_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Writes one line to stderr.
pub fn error(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Prints `message` on stderr and returns exit code 1: the tail of almost every
/// failure path.
pub fn fail(message: impl AsRef<str>) -> i32 {
    error(message.as_ref());
    1
}

/// Prints `message`, a blank line and the command's help on stderr, and returns
/// 1: how Consul answers a command given the wrong arguments.
pub fn fail_with_usage(message: &str, command: &[&str]) -> i32 {
    error(message);
    error("");
    fail(super::usage(command))
}

/// The column delimiter Consul's commands hand to columnize.
pub const DELIM: char = '\x1f';

/// Lays out `DELIM`-separated rows as columnize does: cells trimmed, every column
/// but the last padded to its widest cell (in characters), columns glued with two
/// spaces, no trailing newline.
pub fn columnize(rows: &[String]) -> String {
    let split: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.split(DELIM).map(str::trim).collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &split {
        for (i, c) in cells.iter().enumerate() {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for cells in &split {
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                pad(&mut out, widths[i] - c.chars().count());
                out.push_str("  ");
            }
        }
        out.push('\n');
    }
    out.pop();
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Aligns tab-separated text as Go's `tabwriter.NewWriter(w, minwidth, _, padding,
/// ' ', 0)` does. A cell is text followed by a tab; the text after a line's last tab
/// is not part of any column. Consecutive lines with a cell in column `k` form a
/// block whose cells are padded to the block's widest cell plus `padding` (at least
/// `minwidth`), so a line with fewer cells ends the blocks of the columns it lacks.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut tw = TabWriter {
        lines: &lines,
        minwidth,
        padding,
        widths: Vec::new(),
        out: String::with_capacity(text.len() * 2),
    };
    tw.format(0, lines.len());
    tw.out
}

struct TabWriter<'a> {
    lines: &'a [Vec<&'a str>],
    minwidth: usize,
    padding: usize,
    /// The widths of the columns to the left of the one being formatted.
    widths: Vec<usize>,
    out: String,
}

impl TabWriter<'_> {
    /// Whether line `i` has a tab-terminated cell in `column`.
    fn has_cell(&self, i: usize, column: usize) -> bool {
        column + 1 < self.lines[i].len()
    }

    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if !self.has_cell(this, column) {
                this += 1;
                continue;
            }
            // A column block starts here: the lines above it are done.
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && self.has_cell(this, column) {
                width = width.max(self.lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                self.out.push_str(cell);
                if let Some(&w) = self.widths.get(j) {
                    pad(&mut self.out, w.saturating_sub(cell.chars().count()));
                }
            }
            // The text after the last newline is a line without one.
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

/// Go's `strconv.Quote` (the `%q` verb), shared with the filter's error texts.
pub(crate) use crate::filter::go_quote;

/// An OS error as Go prints it (`open x: no such file or directory`): Rust's
/// `(os error N)` suffix dropped and the message lowercased as Go's errno strings are.
pub fn go_os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Go's `encoding/json` escapes `<`, `>`, `&` and the two Unicode line separators
/// in strings; exported JSON keeps that byte-for-byte. These characters only occur
/// inside strings in serde_json's output, so a plain replacement is exact.
pub fn go_json_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Pretty JSON with Go's `json.MarshalIndent(v, "", indent)` layout.
pub fn go_json_indent<T: serde::Serialize>(value: &T, indent: &str) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if value.serialize(&mut ser).is_err() {
        return String::new();
    }
    go_json_escape(&String::from_utf8_lossy(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columnize_pads_all_but_the_last_column() {
        let rows = vec![
            "Node\x1fAddress\x1fStatus".to_string(),
            "a-long-name\x1f127.0.0.1:8301\x1falive".to_string(),
            "b\x1f10.0.0.2:8301\x1f failed ".to_string(),
        ];
        assert_eq!(
            columnize(&rows),
            "Node         Address         Status\n\
             a-long-name  127.0.0.1:8301  alive\n\
             b            10.0.0.2:8301   failed"
        );
    }

    #[test]
    fn tabwriter_matches_go_for_kv_detailed() {
        // tabwriter.NewWriter(w, 0, 2, 6, ' ', 0) as `consul kv get -detailed`.
        let text = "CreateIndex\t5\nFlags\t0\nKey\tfoo\nSession\t-\nValue\tbar";
        assert_eq!(
            tabwrite(text, 0, 6),
            "CreateIndex      5\nFlags            0\nKey              foo\nSession          -\nValue            bar"
        );
    }

    #[test]
    fn tabwriter_matches_consuls_snapshot_inspect_golden() {
        // command/snapshot/inspect/testdata/TestSnapshotInspectKVDetailsCommand.golden,
        // fed through the formatter's tabwriter.NewWriter(w, 8, 8, 6, ' ', 0).
        let types = [
            ("KVS", 27, "12.3KB"),
            ("Register", 5, "3.4KB"),
            ("Index", 11, "285B"),
            ("Autopilot", 1, "199B"),
            ("Session", 1, "199B"),
            ("CoordinateBatchUpdate", 1, "166B"),
            ("Tombstone", 2, "146B"),
            ("FederationState", 1, "139B"),
            ("ChunkingState", 1, "12B"),
        ];
        let keys = [
            ("vault/core", 16, "5.9KB"),
            ("vault/sys", 7, "4.4KB"),
            ("vault/logical", 4, "2KB"),
        ];
        let mut text = String::from(
            " ID\t2-12426-1604593650375\n Size\t17228\n Index\t12426\n Term\t2\n Version\t1\n",
        );
        text.push_str("\n Type\tCount\tSize\n ----\t----\t----");
        for (n, c, s) in types {
            text.push_str(&format!("\n {n}\t{c}\t{s}"));
        }
        text.push_str("\n ----\t----\t----\n Total\t\t16.8KB\n");
        text.push_str("\n Key Name\tCount\tSize\n ----\t----\t----");
        for (n, c, s) in keys {
            text.push_str(&format!("\n {n}\t{c}\t{s}"));
        }
        text.push_str("\n ----\t----\t----\n Total\t\t12.3KB");
        let golden = " ID           2-12426-1604593650375
 Size         17228
 Index        12426
 Term         2
 Version      1

 Type                       Count      Size
 ----                       ----       ----
 KVS                        27         12.3KB
 Register                   5          3.4KB
 Index                      11         285B
 Autopilot                  1          199B
 Session                    1          199B
 CoordinateBatchUpdate      1          166B
 Tombstone                  2          146B
 FederationState            1          139B
 ChunkingState              1          12B
 ----                       ----       ----
 Total                                 16.8KB

 Key Name           Count      Size
 ----               ----       ----
 vault/core         16         5.9KB
 vault/sys          7          4.4KB
 vault/logical      4          2KB
 ----               ----       ----
 Total                         12.3KB";
        assert_eq!(tabwrite(&text, 8, 6), golden);
    }

    #[test]
    fn tabwriter_keeps_the_trailing_newline() {
        assert_eq!(tabwrite("a\tb\nccc\td\n", 0, 2), "a    b\nccc  d\n");
    }

    #[test]
    fn go_quote_escapes_like_strconv() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }

    #[test]
    fn go_json_indent_uses_tabs_and_html_escapes() {
        let v = serde_json::json!([{"key": "a<b>&c"}]);
        assert_eq!(
            go_json_indent(&v, "\t"),
            "[\n\t{\n\t\t\"key\": \"a\\u003cb\\u003e\\u0026c\"\n\t}\n]"
        );
        assert_eq!(go_json_indent(&serde_json::json!([]), "\t"), "[]");
    }

    #[test]
    fn os_errors_read_like_go() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(go_os_error(&e), "no such file or directory");
    }
}
