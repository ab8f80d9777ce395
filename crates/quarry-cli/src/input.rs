//! Where a statement ends. The shell runs what was typed once it ends with
//! `;`, and scripts are cut into statements the same way, so this scanner
//! knows quotes and comments: a `;` inside `'it;s'` or `-- note;` must not end
//! a statement. It follows the GenericDialect of sqlparser: quotes are escaped
//! by doubling (no backslash escapes) and block comments nest.
//!
//! A line that starts with `.` where a statement could start is a dot command
//! (`.tables`, `.mode csv`): it ends at the end of its line.

/// What the text typed so far holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Only whitespace and comments: nothing to run.
    Blank,
    /// A statement is still open (no final `;`, or inside a quote or comment).
    Open,
    /// Everything ends with a `;` outside quotes and comments (or is a dot
    /// command line).
    Complete,
}

/// One piece of a script: a SQL statement or a dot command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    pub kind: PieceKind,
    /// The statement with its `;` (if it had one), or the dot command line
    /// without its line end.
    pub text: &'a str,
    /// Where `text` starts in the whole text: 1-based line and column
    /// (in characters).
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    Sql,
    Dot,
}

#[derive(Clone, Copy)]
enum State {
    Code,
    Quoted(char),
    LineComment,
    BlockComment(usize),
}

/// Cuts `text` into statements and dot commands, in order. Comments and blank
/// text between statements are dropped; a last statement without `;` is kept.
pub fn split(text: &str) -> Vec<Piece<'_>> {
    walk(text).0
}

/// Scans `text` and tells whether it is ready to run.
pub fn scan(text: &str) -> Input {
    let (pieces, open) = walk(text);
    if open {
        Input::Open
    } else if pieces.is_empty() {
        Input::Blank
    } else {
        Input::Complete
    }
}

/// The pieces of `text`, and whether the text ends inside an unfinished
/// statement (no `;` yet, or an open quote or block comment).
fn walk(text: &str) -> (Vec<Piece<'_>>, bool) {
    let mut pieces = Vec::new();
    let mut state = State::Code;
    // Byte offset where the current statement's first code character is.
    let mut start: Option<usize> = None;
    // At the start of a line, with only whitespace before on that line.
    let mut line_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at_line_start = line_start;
        line_start = c == '\n' || (line_start && c.is_whitespace());
        match state {
            State::Code => match c {
                '.' if start.is_none() && at_line_start => {
                    let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                    pieces.push(piece(text, PieceKind::Dot, i, end));
                    while chars.peek().is_some_and(|&(j, _)| j < end) {
                        chars.next();
                    }
                }
                ';' => {
                    let from = start.take().unwrap_or(i);
                    // A lone `;` is an empty statement: nothing to run.
                    if from < i {
                        pieces.push(piece(text, PieceKind::Sql, from, i + 1));
                    }
                }
                '-' if chars.peek().is_some_and(|&(_, n)| n == '-') => {
                    chars.next();
                    state = State::LineComment;
                }
                '/' if chars.peek().is_some_and(|&(_, n)| n == '*') => {
                    chars.next();
                    state = State::BlockComment(1);
                }
                c if c.is_whitespace() => {}
                c => {
                    start.get_or_insert(i);
                    if matches!(c, '\'' | '"' | '`') {
                        state = State::Quoted(c);
                    }
                }
            },
            // A doubled quote ('it''s') closes and reopens: same result as an escape.
            State::Quoted(q) if c == q => state = State::Code,
            State::Quoted(_) => {}
            State::LineComment if c == '\n' => state = State::Code,
            State::LineComment => {}
            State::BlockComment(depth) => {
                if c == '*' && chars.peek().is_some_and(|&(_, n)| n == '/') {
                    chars.next();
                    state = match depth {
                        1 => State::Code,
                        d => State::BlockComment(d - 1),
                    };
                } else if c == '/' && chars.peek().is_some_and(|&(_, n)| n == '*') {
                    chars.next();
                    state = State::BlockComment(depth + 1);
                }
            }
        }
    }
    let in_quote_or_comment = matches!(state, State::Quoted(_) | State::BlockComment(_));
    let open = start.is_some() || in_quote_or_comment;
    if let Some(from) = start {
        pieces.push(piece(text, PieceKind::Sql, from, text.len()));
    }
    (pieces, open)
}

fn piece(text: &str, kind: PieceKind, from: usize, to: usize) -> Piece<'_> {
    let before = &text[..from];
    let line = before.matches('\n').count() as u64 + 1;
    let line_begin = before.rfind('\n').map_or(0, |n| n + 1);
    let column = before[line_begin..].chars().count() as u64 + 1;
    Piece {
        kind,
        text: text[from..to].trim_end(),
        line,
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_text_and_comments() {
        assert_eq!(scan(""), Input::Blank);
        assert_eq!(scan("  \n\t"), Input::Blank);
        assert_eq!(scan("-- just a note; really"), Input::Blank);
        assert_eq!(scan("/* a; b */"), Input::Blank);
        assert_eq!(scan("/* open"), Input::Open);
    }

    #[test]
    fn statements_end_at_semicolon() {
        assert_eq!(scan("SELECT 1"), Input::Open);
        assert_eq!(scan("SELECT 1;"), Input::Complete);
        assert_eq!(scan("SELECT 1\nFROM t\n;  \n"), Input::Complete);
        assert_eq!(scan("SELECT 1; SELECT 2"), Input::Open);
        assert_eq!(scan("SELECT 1; SELECT 2;"), Input::Complete);
        // An empty statement: nothing to run.
        assert_eq!(scan(";"), Input::Blank);
    }

    #[test]
    fn semicolons_in_quotes_do_not_count() {
        assert_eq!(scan("SELECT 'a;"), Input::Open);
        assert_eq!(scan("SELECT 'a;'"), Input::Open);
        assert_eq!(scan("SELECT 'a;';"), Input::Complete);
        assert_eq!(scan("SELECT 'it''s;'"), Input::Open);
        assert_eq!(scan("SELECT 'it''s;';"), Input::Complete);
        assert_eq!(scan("SELECT \"col;\" FROM t;"), Input::Complete);
        assert_eq!(scan("SELECT \"col;"), Input::Open);
    }

    #[test]
    fn semicolons_in_comments_do_not_count() {
        assert_eq!(scan("SELECT 1 -- done;"), Input::Open);
        assert_eq!(scan("SELECT 1; -- done"), Input::Complete);
        assert_eq!(scan("SELECT 1 /* ; */"), Input::Open);
        assert_eq!(scan("SELECT 1 /* ; */;"), Input::Complete);
        assert_eq!(scan("SELECT 1 /* /* ; */ still; */;"), Input::Complete);
        assert_eq!(scan("SELECT 1 /* /* ; */ still;"), Input::Open);
        assert_eq!(scan("SELECT 1; /* trailing"), Input::Open);
        assert_eq!(scan("SELECT 10-1;"), Input::Complete);
    }

    #[test]
    fn dot_commands_are_complete_lines() {
        assert_eq!(scan(".tables"), Input::Complete);
        assert_eq!(scan("  .mode csv\n"), Input::Complete);
        assert_eq!(scan(".tables\nSELECT 1"), Input::Open);
    }

    fn kinds_and_texts(text: &str) -> Vec<(PieceKind, &str, u64, u64)> {
        split(text)
            .into_iter()
            .map(|p| (p.kind, p.text, p.line, p.column))
            .collect()
    }

    #[test]
    fn split_cuts_statements_and_dot_commands() {
        use PieceKind::{Dot, Sql};
        let text = "-- intro\nSELECT 1;  SELECT 'a;b'\n  FROM t;\n.mode csv\n;;\n/* x */ SELECT 3";
        assert_eq!(
            kinds_and_texts(text),
            vec![
                (Sql, "SELECT 1;", 2, 1),
                (Sql, "SELECT 'a;b'\n  FROM t;", 2, 12),
                (Dot, ".mode csv", 4, 1),
                (Sql, "SELECT 3", 6, 9),
            ]
        );
    }

    #[test]
    fn a_dot_inside_a_statement_is_sql() {
        use PieceKind::Sql;
        assert_eq!(
            kinds_and_texts("SELECT\n.5;"),
            vec![(Sql, "SELECT\n.5;", 1, 1)]
        );
        assert_eq!(
            kinds_and_texts("SELECT 1; .tables"),
            vec![(Sql, "SELECT 1;", 1, 1), (Sql, ".tables", 1, 11)]
        );
    }

    #[test]
    fn columns_count_characters() {
        let pieces = split("SELECT 'é'; SELECT 2;");
        assert_eq!(pieces[1].column, 13);
    }

    #[test]
    fn blank_text_has_no_pieces() {
        assert!(split("  -- nothing\n/* here */\n").is_empty());
    }
}
