//! What the line editor knows about SQL: where a statement ends (Enter
//! inside an open statement continues it), tab completion (keywords, tables
//! and views, their columns, file paths inside quotes, dot commands) and
//! colors (keywords, strings, numbers, comments).
//!
//! A continued statement stays one buffer, editable as a whole. rustyline
//! draws its prompt on the first line only, so Enter in an open statement
//! inserts a line end and an indent as wide as the prompt, and the
//! highlighter draws that indent as the continuation prompt `   ...> `; the
//! indent is taken out again before the statement runs.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    CharSearch, Cmd, ConditionalEventHandler, Context, Event, EventContext, Helper, Movement,
    RepeatCount,
};

use super::input::{scan, Input};
use quarry_core::Session;

pub const PROMPT: &str = "quarry> ";
pub const CONTINUATION: &str = "   ...> ";
/// What Enter inserts after the line end of an open statement.
const INDENT: &str = "        ";

const KEYWORD: &str = "\x1b[1;34m";
const STRING: &str = "\x1b[32m";
const NUMBER: &str = "\x1b[33m";
const COMMENT: &str = "\x1b[2;37m";
const DOT_COMMAND: &str = "\x1b[1;35m";
const DIM: &str = "\x1b[2m";
const PROMPT_STYLE: &str = "\x1b[1;32m";
const RESET: &str = "\x1b[0m";

/// Keywords, completed and colored.
pub const KEYWORDS: &[&str] = &[
    "ALL",
    "ANALYZE",
    "AND",
    "AS",
    "ASC",
    "AVG",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "COALESCE",
    "COUNT",
    "CREATE",
    "CROSS",
    "CSV",
    "DATE",
    "DAY",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "DROP",
    "ELSE",
    "END",
    "EXISTS",
    "EXPLAIN",
    "EXTERNAL",
    "EXTRACT",
    "FALSE",
    "FIRST",
    "FORMAT",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "IF",
    "ILIKE",
    "IN",
    "INNER",
    "INTERVAL",
    "IS",
    "JOIN",
    "LAST",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOCATION",
    "MAX",
    "MIN",
    "MONTH",
    "NOT",
    "NULL",
    "NULLS",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "PARQUET",
    "READ_CSV",
    "READ_PARQUET",
    "REPLACE",
    "RIGHT",
    "SELECT",
    "SET",
    "SHOW",
    "STORED",
    "SUBSTRING",
    "SUM",
    "TABLE",
    "TABLES",
    "THEN",
    "TRUE",
    "UNION",
    "USING",
    "VIEW",
    "WHEN",
    "WHERE",
    "WITH",
    "YEAR",
];

/// The shell's dot commands, for completion and hints.
pub const DOT_COMMANDS: &[&str] = &[
    ".exit", ".help", ".maxrows", ".mode", ".once", ".open", ".output", ".quit", ".read",
    ".schema", ".tables", ".timer", ".tpch",
];

/// Keywords after which a table name comes.
const BEFORE_TABLE: &[&str] = &["FROM", "JOIN", "TABLE", "DESCRIBE", "VIEW", "INTO"];

/// Takes the continuation indents out of an edited statement.
pub fn strip_continuations(buffer: &str) -> String {
    let mut lines = buffer.split('\n');
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        out.push_str(line.strip_prefix(INDENT).unwrap_or(line));
    }
    out
}

pub struct SqlHelper<'a> {
    session: &'a Session,
}

impl<'a> SqlHelper<'a> {
    pub fn new(session: &'a Session) -> Self {
        SqlHelper { session }
    }
}

impl Helper for SqlHelper<'_> {}

impl Hinter for SqlHelper<'_> {
    type Hint = String;
}

impl Validator for SqlHelper<'_> {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(match scan(ctx.input()) {
            Input::Open => ValidationResult::Incomplete,
            Input::Blank | Input::Complete => ValidationResult::Valid(None),
        })
    }
}

/// Enter at the end of an open statement: a new line, indented as wide as
/// the prompt (drawn as the continuation prompt). Otherwise Enter does what
/// it always does: the validator decides.
pub struct ContinueOnEnter;

impl ConditionalEventHandler for ContinueOnEnter {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        let line = ctx.line();
        (ctx.pos() == line.len() && scan(line) == Input::Open)
            .then(|| Cmd::Insert(1, format!("\n{INDENT}")))
    }
}

/// Keys that move or delete across the line ends of a continued statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Left,
    Right,
    Backspace,
}

/// Makes a key treat a continuation indent like the prompt it looks like:
/// Left and Right step over it, and Backspace at its end joins the lines.
/// (Up and Down keep the screen column already: the indent is as wide as the
/// prompt of the first line. Home goes to the start of the line, indent and
/// all: the editor has no move to a given place that could do better.)
pub struct SkipIndent(pub Key);

impl ConditionalEventHandler for SkipIndent {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        continuation_key(self.0, ctx.line(), ctx.pos())
    }
}

/// What `key` does at `pos` of a multi-line buffer; None: the usual. (The
/// editor gives moves and kills the repeat count typed, 1 by default, so
/// these are searches for a character, not counted steps.)
fn continuation_key(key: Key, line: &str, pos: usize) -> Option<Cmd> {
    if !line.contains('\n') || !line.is_char_boundary(pos) {
        return None;
    }
    let (before, after) = line.split_at(pos);
    let break_and_indent = format!("\n{INDENT}");
    // To the line end before the indent: the `\n` itself.
    let back_to_line_end = Movement::ViCharSearch(1, CharSearch::Backward('\n'));
    match key {
        Key::Left if before.ends_with(&break_and_indent) => Some(Cmd::Move(back_to_line_end)),
        Key::Backspace if before.ends_with(&break_and_indent) => Some(Cmd::Kill(back_to_line_end)),
        Key::Right => {
            let next = after.strip_prefix(&break_and_indent)?;
            let rest = next.split('\n').next().unwrap_or_default();
            match rest.trim_start().chars().next() {
                // To the first character of the next line.
                Some(c) => Some(Cmd::Move(Movement::ViCharSearch(1, CharSearch::Forward(c)))),
                None if !next.contains('\n') => Some(Cmd::Move(Movement::EndOfBuffer)),
                None => None,
            }
        }
        _ => None,
    }
}

/// Notes whether Ctrl-C was pressed on an empty line (a second one exits).
pub struct NoteInterrupt(pub Arc<AtomicBool>);

impl ConditionalEventHandler for NoteInterrupt {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        self.0.store(ctx.line().is_empty(), Ordering::Relaxed);
        None
    }
}

// --- tokens ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Number,
    /// `'…'`; the flag tells whether it was closed.
    String(bool),
    /// `"…"` or `` `…` ``.
    QuotedName,
    Comment,
    Space,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// A forgiving tokenizer: every byte of `text` is in one token, unfinished
/// quotes and comments included.
fn tokens(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let kind = match c {
            b'\'' | b'"' | b'`' => {
                i += 1;
                let mut closed = false;
                while i < bytes.len() {
                    if bytes[i] == c {
                        // A doubled quote is an escaped one.
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        closed = true;
                        break;
                    }
                    i += 1;
                }
                if c == b'\'' {
                    Kind::String(closed)
                } else {
                    Kind::QuotedName
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                Kind::Comment
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                let mut depth = 1;
                while i < bytes.len() && depth > 0 {
                    if bytes[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                    } else if bytes[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                Kind::Comment
            }
            c if c.is_ascii_digit()
                || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                Kind::Number
            }
            c if is_word_byte(c) => {
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                Kind::Word
            }
            c if c.is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                Kind::Space
            }
            _ => {
                i += 1;
                // Keep multi-byte characters whole.
                while i < bytes.len() && !text.is_char_boundary(i) {
                    i += 1;
                }
                Kind::Other
            }
        };
        out.push(Token {
            kind,
            start,
            end: i.min(bytes.len()),
        });
    }
    out
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

// --- highlighting ------------------------------------------------------------

impl Highlighter for SqlHelper<'_> {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Owned(highlight(line))
    }

    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Owned(format!("{PROMPT_STYLE}{prompt}{RESET}"))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        true
    }
}

/// `text` with ANSI colors, and continuation indents drawn as the prompt.
fn highlight(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    if text.trim_start().starts_with('.') && !text.contains('\n') {
        let end = text
            .trim_start()
            .find(char::is_whitespace)
            .map_or(text.len(), |n| n + text.len() - text.trim_start().len());
        out.push_str(DOT_COMMAND);
        out.push_str(&text[..end]);
        out.push_str(RESET);
        out.push_str(&text[end..]);
        return out;
    }
    for t in tokens(text) {
        let piece = &text[t.start..t.end];
        let style = match t.kind {
            Kind::Word if is_keyword(piece) => Some(KEYWORD),
            Kind::Number => Some(NUMBER),
            Kind::String(_) => Some(STRING),
            Kind::Comment => Some(COMMENT),
            _ => None,
        };
        let mut lines = piece.split('\n');
        push_styled(&mut out, lines.next().unwrap_or_default(), style);
        for line in lines {
            out.push('\n');
            let rest = match line.strip_prefix(INDENT) {
                Some(rest) => {
                    out.push_str(DIM);
                    out.push_str(CONTINUATION);
                    out.push_str(RESET);
                    rest
                }
                None => line,
            };
            push_styled(&mut out, rest, style);
        }
    }
    out
}

fn push_styled(out: &mut String, text: &str, style: Option<&str>) {
    match style {
        Some(style) if !text.is_empty() => {
            out.push_str(style);
            out.push_str(text);
            out.push_str(RESET);
        }
        _ => out.push_str(text),
    }
}

// --- completion --------------------------------------------------------------

impl Completer for SqlHelper<'_> {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(complete(line, pos, &Names::from(self.session)))
    }
}

/// The columns of a table, if it exists.
type ColumnsOf<'a> = Box<dyn Fn(&str) -> Option<Vec<String>> + 'a>;

/// What completion may offer besides keywords: the catalog's names.
pub struct Names<'a> {
    tables: Vec<String>,
    columns: ColumnsOf<'a>,
}

impl<'a> From<&'a Session> for Names<'a> {
    fn from(session: &'a Session) -> Self {
        Names {
            tables: session.table_names(),
            columns: Box::new(move |t| session.column_names(t)),
        }
    }
}

fn complete(line: &str, pos: usize, names: &Names) -> (usize, Vec<Pair>) {
    let before = &line[..pos];
    let trimmed = before.trim_start();
    if trimmed.starts_with('.') && !before.contains('\n') {
        return complete_dot_command(before, names);
    }
    let toks = tokens(before);
    if let Some(last) = toks.last() {
        match last.kind {
            // Inside an open quote: a file path.
            Kind::String(false) => {
                let start = last.start + 1;
                return (start, complete_path(&before[start..], true));
            }
            Kind::String(true) | Kind::QuotedName | Kind::Comment => return (pos, vec![]),
            _ => {}
        }
    }
    // The word being typed, perhaps `alias.col`.
    let start = before
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .map_or(0, |n| {
            n + before[n..].chars().next().map_or(1, char::len_utf8)
        });
    let word = &before[start..];
    let all = tokens(line);
    if let Some((qualifier, prefix)) = word.rsplit_once('.') {
        let Some(table) = resolve_table(line, &all, qualifier, names) else {
            return (pos, vec![]);
        };
        let columns = (names.columns)(&table).unwrap_or_default();
        let pairs = matching(&columns, prefix, false)
            .into_iter()
            .map(|c| pair(format!("{qualifier}.{c}"), c))
            .collect();
        return (start, pairs);
    }
    let previous = toks
        .iter()
        .rev()
        .filter(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
        .nth(if word.is_empty() { 0 } else { 1 })
        .filter(|t| t.kind == Kind::Word)
        .map(|t| &before[t.start..t.end]);
    let wants_table =
        previous.is_some_and(|p| BEFORE_TABLE.iter().any(|k| k.eq_ignore_ascii_case(p)));
    if word.is_empty() && !wants_table {
        return (pos, vec![]);
    }
    let mut candidates: Vec<String> = Vec::new();
    if wants_table {
        candidates.extend(matching(&names.tables, word, false));
    } else {
        for table in tables_in(line, &all, names) {
            for column in (names.columns)(&table).unwrap_or_default() {
                if !candidates.contains(&column) && starts_with_ignore_case(&column, word) {
                    candidates.push(column);
                }
            }
        }
        candidates.extend(matching(&names.tables, word, false));
        let keywords: Vec<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
        candidates.extend(matching(&keywords, word, true));
    }
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|c| seen.insert(c.to_lowercase()));
    (
        start,
        candidates.into_iter().map(|c| pair(c.clone(), c)).collect(),
    )
}

fn pair(replacement: String, display: String) -> Pair {
    Pair {
        display,
        replacement,
    }
}

fn starts_with_ignore_case(candidate: &str, prefix: &str) -> bool {
    candidate.len() >= prefix.len()
        && candidate.is_char_boundary(prefix.len())
        && candidate[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Candidates starting with `prefix`, sorted; keywords follow the case of
/// what was typed.
fn matching(candidates: &[String], prefix: &str, keyword: bool) -> Vec<String> {
    let lower = !prefix.is_empty() && prefix.chars().all(|c| !c.is_uppercase());
    let mut out: Vec<String> = candidates
        .iter()
        .filter(|c| starts_with_ignore_case(c, prefix))
        .map(|c| {
            if keyword && lower {
                c.to_lowercase()
            } else {
                c.clone()
            }
        })
        .collect();
    out.sort();
    out
}

/// Known tables named anywhere in the statement.
fn tables_in(line: &str, all: &[Token], names: &Names) -> Vec<String> {
    let mut found = Vec::new();
    for t in all.iter().filter(|t| t.kind == Kind::Word) {
        let word = &line[t.start..t.end];
        if let Some(name) = names.tables.iter().find(|n| n.eq_ignore_ascii_case(word)) {
            if !found.contains(name) {
                found.push(name.clone());
            }
        }
    }
    found
}

/// The table that `qualifier` stands for: a table name, or an alias given
/// with `table [AS] alias`.
fn resolve_table(line: &str, all: &[Token], qualifier: &str, names: &Names) -> Option<String> {
    if let Some(name) = names
        .tables
        .iter()
        .find(|n| n.eq_ignore_ascii_case(qualifier))
    {
        return Some(name.clone());
    }
    let words: Vec<&str> = all
        .iter()
        .filter(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
        .map(|t| &line[t.start..t.end])
        .collect();
    for (i, word) in words.iter().enumerate() {
        let Some(table) = names.tables.iter().find(|n| n.eq_ignore_ascii_case(word)) else {
            continue;
        };
        let alias = match words.get(i + 1) {
            Some(w) if w.eq_ignore_ascii_case("as") => words.get(i + 2),
            other => other,
        };
        if alias.is_some_and(|a| a.eq_ignore_ascii_case(qualifier)) {
            return Some(table.clone());
        }
    }
    None
}

fn complete_dot_command(before: &str, names: &Names) -> (usize, Vec<Pair>) {
    let trimmed = before.trim_start();
    let indent = before.len() - trimmed.len();
    let Some((command, argument)) = trimmed.split_once(char::is_whitespace) else {
        let commands: Vec<String> = DOT_COMMANDS.iter().map(|c| c.to_string()).collect();
        let pairs = matching(&commands, trimmed, false)
            .into_iter()
            .map(|c| pair(c.clone(), c))
            .collect();
        return (indent, pairs);
    };
    let argument = argument.trim_start();
    let start = before.len() - argument.len();
    let options: Vec<String> = match command {
        ".read" | ".output" | ".once" | ".open" => {
            return (start, complete_path(argument, false));
        }
        ".mode" => super::format::OutputFormat::names()
            .split('|')
            .map(String::from)
            .collect(),
        ".timer" => vec!["on".into(), "off".into()],
        ".schema" => names.tables.clone(),
        _ => vec![],
    };
    let pairs = matching(&options, argument, false)
        .into_iter()
        .map(|c| pair(c.clone(), c))
        .collect();
    (start, pairs)
}

/// Files and directories that start with `partial`; directories end with
/// `/`. In a SQL string a single file also gets its closing quote.
fn complete_path(partial: &str, quoted: bool) -> Vec<Pair> {
    let (dir, prefix) = match partial.rfind('/') {
        Some(n) => (&partial[..=n], &partial[n + 1..]),
        None => ("", partial),
    };
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() {
        Path::new(".")
    } else {
        Path::new(dir)
    }) else {
        return vec![];
    };
    let mut found: Vec<(String, bool)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let hidden_ok = prefix.starts_with('.') || !name.starts_with('.');
            (hidden_ok && name.starts_with(prefix)).then(|| (name, e.path().is_dir()))
        })
        .collect();
    found.sort();
    let single_file = found.len() == 1 && !found[0].1;
    found
        .into_iter()
        .map(|(name, is_dir)| {
            let mut replacement = format!("{dir}{name}");
            if is_dir {
                replacement.push('/');
            } else if quoted && single_file {
                replacement.push('\'');
            }
            let display = if is_dir { format!("{name}/") } else { name };
            pair(replacement, display)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names<'static> {
        Names {
            tables: vec!["lineitem".into(), "nation".into(), "orders".into()],
            columns: Box::new(|t| match t {
                "lineitem" => Some(vec!["l_orderkey".into(), "l_quantity".into()]),
                "orders" => Some(vec!["o_orderkey".into(), "o_orderdate".into()]),
                "nation" => Some(vec!["n_name".into()]),
                _ => None,
            }),
        }
    }

    fn replacements(line: &str) -> (usize, Vec<String>) {
        let (start, pairs) = complete(line, line.len(), &names());
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn tables_after_from() {
        assert_eq!(
            replacements("SELECT * FROM li"),
            (14, vec!["lineitem".to_string()])
        );
        assert_eq!(
            replacements("SELECT * FROM ").1,
            ["lineitem", "nation", "orders"]
        );
        assert_eq!(replacements("select * from o join n").1, ["nation"]);
    }

    #[test]
    fn columns_of_the_tables_in_the_statement() {
        let line = "SELECT l_q FROM lineitem";
        let (start, pairs) = complete(line, "SELECT l_q".len(), &names());
        assert_eq!(start, 7);
        assert_eq!(pairs[0].replacement, "l_quantity");
        // Columns of tables not named in the statement are not offered.
        assert_eq!(replacements("SELECT o_").1, Vec::<String>::new());
    }

    #[test]
    fn qualified_columns_through_aliases() {
        assert_eq!(
            replacements("SELECT * FROM orders o WHERE o.o_order").1,
            ["o.o_orderdate", "o.o_orderkey"]
        );
        assert_eq!(
            replacements("SELECT lineitem.l_o").1,
            ["lineitem.l_orderkey"]
        );
        let line = "SELECT x.l_o FROM lineitem AS x";
        let (_, pairs) = complete(line, "SELECT x.l_o".len(), &names());
        assert_eq!(pairs[0].replacement, "x.l_orderkey");
    }

    #[test]
    fn keywords_follow_the_case_typed() {
        assert_eq!(replacements("SEL").1, ["SELECT"]);
        assert_eq!(replacements("sel").1, ["select"]);
        assert!(replacements("SELECT 1 GR").1.contains(&"GROUP".to_string()));
    }

    #[test]
    fn nothing_inside_closed_strings_or_comments() {
        assert!(replacements("SELECT 'abc' ").1.is_empty());
        assert!(replacements("SELECT 1 -- fr").1.is_empty());
    }

    #[test]
    fn paths_inside_quotes() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("data.parquet"), b"").expect("write");
        std::fs::write(dir.path().join("data.csv"), b"").expect("write");
        let base = dir.path().to_str().expect("utf-8 temp path");
        let line = format!("SELECT * FROM '{base}/da");
        let (start, pairs) = complete(&line, line.len(), &names());
        assert_eq!(start, 15);
        let got: Vec<&str> = pairs.iter().map(|p| p.replacement.as_str()).collect();
        assert_eq!(
            got,
            [format!("{base}/data.csv"), format!("{base}/data.parquet")]
        );
        // One file: the quote is closed too; a directory gets its slash.
        let line = format!("SELECT * FROM '{base}/data.p");
        assert_eq!(replacements(&line).1, [format!("{base}/data.parquet'")]);
        let line = format!("SELECT * FROM '{base}/s");
        assert_eq!(replacements(&line).1, [format!("{base}/sub/")]);
    }

    #[test]
    fn dot_commands_and_their_arguments() {
        assert_eq!(replacements(".ta"), (0, vec![".tables".to_string()]));
        assert_eq!(replacements(".m").1, [".maxrows", ".mode"]);
        assert_eq!(replacements(".mode c"), (6, vec!["csv".to_string()]));
        assert_eq!(replacements(".schema n").1, ["nation"]);
        assert_eq!(replacements(".timer o").1, ["off", "on"]);
    }

    #[test]
    fn highlighting() {
        let text = highlight("SELECT 'a', 42 -- n");
        assert_eq!(
            text,
            format!(
                "{KEYWORD}SELECT{RESET} {STRING}'a'{RESET}, {NUMBER}42{RESET} {COMMENT}-- n{RESET}"
            )
        );
        // Continuation indents are drawn as the prompt, even inside a string.
        let text = highlight(&format!("SELECT 'a\n{INDENT}b'"));
        assert_eq!(
            text,
            format!(
                "{KEYWORD}SELECT{RESET} {STRING}'a{RESET}\n{DIM}{CONTINUATION}{RESET}{STRING}b'{RESET}"
            )
        );
        assert_eq!(
            highlight(".mode csv"),
            format!("{DOT_COMMAND}.mode{RESET} csv")
        );
    }

    #[test]
    fn keys_skip_the_continuation_indent() {
        let line = format!("SELECT 1,\n{INDENT}22,\n{INDENT}");
        let second = line.find("22").expect("second line");
        let search = |c| Some(Cmd::Move(Movement::ViCharSearch(1, c)));
        // At the start of a continued line, Left and Backspace go to the end
        // of the line above.
        assert_eq!(
            continuation_key(Key::Left, &line, second),
            search(CharSearch::Backward('\n'))
        );
        assert_eq!(
            continuation_key(Key::Backspace, &line, second),
            Some(Cmd::Kill(Movement::ViCharSearch(
                1,
                CharSearch::Backward('\n')
            )))
        );
        assert_eq!(continuation_key(Key::Left, &line, second + 1), None);
        assert_eq!(
            continuation_key(Key::Left, &line, line.len()),
            search(CharSearch::Backward('\n'))
        );
        // At the end of a line, Right goes to the first character below.
        assert_eq!(
            continuation_key(Key::Right, &line, second - 9),
            search(CharSearch::Forward('2'))
        );
        assert_eq!(
            continuation_key(Key::Right, &line, second + 3),
            Some(Cmd::Move(Movement::EndOfBuffer))
        );
        assert_eq!(continuation_key(Key::Right, &line, 2), None);
        // A one-line buffer: always the usual.
        assert_eq!(continuation_key(Key::Left, "SELECT", 3), None);
    }

    #[test]
    fn continuation_indents_are_taken_out() {
        let buffer = format!("SELECT 1,\n{INDENT}2,\n{INDENT}  3;");
        assert_eq!(strip_continuations(&buffer), "SELECT 1,\n2,\n  3;");
        assert_eq!(CONTINUATION.len(), PROMPT.len());
        assert_eq!(INDENT.len(), PROMPT.len());
    }

    #[test]
    fn tokens_cover_the_text() {
        let text = "SELECT \"a b\", 'it''s', 1.5e3, x/*c*/é";
        let toks = tokens(text);
        assert_eq!(toks.first().map(|t| t.start), Some(0));
        assert_eq!(toks.last().map(|t| t.end), Some(text.len()));
        for w in toks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert!(toks
            .iter()
            .any(|t| t.kind == Kind::String(true) && &text[t.start..t.end] == "'it''s'"));
    }
}
