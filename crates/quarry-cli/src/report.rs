//! Error messages for people: `Error: <message>`, and when the engine knows
//! where in the SQL the problem is, that line with a caret under the column.

use quarry_core::error::Location;
use quarry_core::QuarryError;

/// Lines longer than this are cut to a window around the caret.
const MAX_SHOWN: usize = 100;

/// The text printed on stderr for an error in `sql` (ends with a newline):
/// `location` is the error's place, already moved into `sql` (the engine saw
/// one statement of a longer script); `source` names the script, if any.
pub fn render_error_at(
    err: &QuarryError,
    sql: &str,
    location: Option<Location>,
    source: Option<&str>,
) -> String {
    // The engine's message names the place within the statement it saw;
    // the place shown here is in the whole text.
    let message = match err {
        QuarryError::Plan { message, .. } => message.clone(),
        QuarryError::Syntax { message, location } => {
            let suffix = location.map(|l| format!(" at {l}")).unwrap_or_default();
            let message = message.strip_suffix(suffix.as_str()).unwrap_or(message);
            format!("syntax error: {message}")
        }
        other => other.to_string(),
    };
    match location {
        Some(at) => match snippet(sql, at, source) {
            Some(snippet) => format!("Error: {message}\n{snippet}"),
            None => format!("Error: {message} (at {at})\n"),
        },
        None => format!("Error: {message}\n"),
    }
}

/// `line 3: SELECT x FROM t` (or `script.sql:3: …`) and a caret line under
/// column `at.column`.
fn snippet(sql: &str, at: Location, source: Option<&str>) -> Option<String> {
    let index = usize::try_from(at.line).ok()?.checked_sub(1)?;
    let line: Vec<char> = sql.lines().nth(index)?.chars().collect();
    let column = usize::try_from(at.column)
        .ok()?
        .saturating_sub(1)
        .min(line.len());

    // Show at most MAX_SHOWN characters, the caret well inside them.
    let start = column.saturating_sub(MAX_SHOWN / 2);
    let end = (start + MAX_SHOWN).min(line.len());
    let mut shown: String = line[start..end].iter().collect();
    let mut prefix = match source {
        Some(name) => format!("{name}:{}: ", at.line),
        None => format!("line {}: ", at.line),
    };
    if start > 0 {
        prefix.push_str("...");
    }
    if end < line.len() {
        shown.push_str("...");
    }
    // Keep tabs as tabs so the caret lines up under tab-indented SQL.
    let pad: String = line[start..column]
        .iter()
        .map(|&c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!(
        "{prefix}{shown}\n{}{pad}^\n",
        " ".repeat(prefix.chars().count())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_error(err: &QuarryError, sql: &str) -> String {
        render_error_at(err, sql, err.location(), None)
    }

    fn at(line: u64, column: u64) -> Option<Location> {
        Some(Location { line, column })
    }

    #[test]
    fn no_location_is_one_line() {
        let err = QuarryError::plan("table 'nope' not found");
        assert_eq!(
            render_error(&err, "SELECT * FROM nope"),
            "Error: table 'nope' not found\n"
        );
    }

    #[test]
    fn caret_points_at_the_column() {
        let err = QuarryError::Syntax {
            message: "Expected: end of statement, found: 2".into(),
            location: at(2, 10),
        };
        let text = render_error(&err, "SELECT 1;\nSELECT 1 2;\n");
        assert_eq!(
            text,
            "Error: syntax error: Expected: end of statement, found: 2\n\
             line 2: SELECT 1 2;\n\
             \x20                ^\n"
        );
    }

    #[test]
    fn syntax_errors_do_not_repeat_their_place() {
        let err = QuarryError::Syntax {
            message: "Expected: ), found: end of input at line 1, column 10".into(),
            location: at(1, 10),
        };
        assert_eq!(
            render_error_at(&err, "SELECT 1;\nSELECT (1", at(2, 10), None),
            "Error: syntax error: Expected: ), found: end of input\n\
             line 2: SELECT (1\n\
             \x20                ^\n"
        );
    }

    #[test]
    fn plan_errors_do_not_repeat_their_place() {
        let err = QuarryError::plan_at("column 'nme' not found, did you mean 'name'?", at(1, 8));
        assert_eq!(
            render_error(&err, "SELECT nme FROM t"),
            "Error: column 'nme' not found, did you mean 'name'?\n\
             line 1: SELECT nme FROM t\n\
             \x20              ^\n"
        );
    }

    #[test]
    fn script_name_and_moved_place() {
        let err = QuarryError::plan_at("bad", at(1, 1));
        let text = render_error_at(&err, "SELECT 1;\n  SELECT x;", at(2, 10), Some("a.sql"));
        assert_eq!(
            text,
            "Error: bad\na.sql:2:   SELECT x;\n                  ^\n"
        );
    }

    #[test]
    fn tabs_keep_the_caret_aligned() {
        let err = QuarryError::plan_at("unknown column x", at(1, 3));
        let text = render_error(&err, "\t\tx");
        assert!(text.ends_with("line 1: \t\tx\n        \t\t^\n"), "{text:?}");
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let sql = format!("SELECT {} FROM t", "a, ".repeat(200));
        let err = QuarryError::plan_at("bad", at(1, 400));
        let text = render_error(&err, &sql);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("line 1: ..."), "{text}");
        assert!(lines[1].ends_with("..."), "{text}");
        let caret = lines[2].find('^').expect("a caret");
        assert_eq!(&lines[1][caret..caret + 1], &sql[399..400]);
    }

    #[test]
    fn location_outside_the_text_is_ignored() {
        let err = QuarryError::plan_at("bad", at(9, 1));
        assert_eq!(
            render_error(&err, "SELECT 1"),
            "Error: bad (at line 9, column 1)\n"
        );
        let err = QuarryError::plan_at("bad", at(0, 0));
        assert_eq!(
            render_error(&err, "SELECT 1"),
            "Error: bad (at line 0, column 0)\n"
        );
    }
}
