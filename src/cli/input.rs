//! Where a statement ends. The REPL runs what was typed once it ends with `;`,
//! so this scanner knows quotes and comments: a `;` inside `'it;s'` or
//! `-- note;` must not end a statement. It follows the GenericDialect of
//! sqlparser: quotes are escaped by doubling (no backslash escapes) and block
//! comments nest.

/// What the text typed so far holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Only whitespace and comments: nothing to run.
    Blank,
    /// A statement is still open (no final `;`, or inside a quote or comment).
    Open,
    /// Everything ends with a `;` outside quotes and comments.
    Complete,
}

#[derive(Clone, Copy)]
enum State {
    Code,
    Quoted(char),
    LineComment,
    BlockComment(usize),
}

/// Scans `text` and tells whether it is ready to run.
pub fn scan(text: &str) -> Input {
    let mut state = State::Code;
    let mut seen_code = false;
    let mut ends_with_semicolon = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            State::Code => match c {
                ';' => {
                    seen_code = true;
                    ends_with_semicolon = true;
                }
                '-' if chars.peek() == Some(&'-') => {
                    chars.next();
                    state = State::LineComment;
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    state = State::BlockComment(1);
                }
                c if c.is_whitespace() => {}
                c => {
                    seen_code = true;
                    ends_with_semicolon = false;
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
                if c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    state = match depth {
                        1 => State::Code,
                        d => State::BlockComment(d - 1),
                    };
                } else if c == '/' && chars.peek() == Some(&'*') {
                    chars.next();
                    state = State::BlockComment(depth + 1);
                }
            }
        }
    }
    match state {
        // Inside a quote or block comment, even with no code yet: keep reading.
        State::Quoted(_) | State::BlockComment(_) => Input::Open,
        State::Code | State::LineComment if !seen_code => Input::Blank,
        State::Code | State::LineComment if ends_with_semicolon => Input::Complete,
        State::Code | State::LineComment => Input::Open,
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
        assert_eq!(scan(";"), Input::Complete);
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
}
