//! SQL text → AST (sqlparser) → bound logical plan.

mod binder;
mod coerce;
mod expr;
mod forward;
mod from;
mod grouping_sets;
mod lateral;
mod recursive;
mod scope;
mod set_ops;
mod subquery;
mod temporal;
mod unnest;
mod window;

pub use binder::Binder;
pub use expr::sql_data_type;
pub use forward::bind_statement_query;

pub use scope::Scope;

pub(crate) use recursive::reads_work_table;

use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use crate::error::{Location, QuarryError, Result};

/// A parsed statement: sqlparser's, or one of the few statements of our own.
#[derive(Debug, Clone)]
pub enum QuarryStatement {
    Sql(Box<Statement>),
    /// `CREATE [OR REPLACE] EXTERNAL TABLE [IF NOT EXISTS] name STORED AS
    /// PARQUET|CSV LOCATION 'path'` (sqlparser knows no CSV file format).
    CreateExternalTable {
        name: String,
        format: String,
        location: String,
        or_replace: bool,
        if_not_exists: bool,
    },
}

/// Parses `text` into statements; a syntax error carries its line and column.
pub fn parse(text: &str) -> Result<Vec<QuarryStatement>> {
    check_bracket_depth(text)?;
    parse_statements(text).map_err(|e| syntax_error(e, text))
}

/// How deep sqlparser may recurse (its default is 50). Some of its parses
/// are retried another way when they fail (`extract(…`, `IN (…`), so that an
/// unclosed nesting costs time exponential in its depth: the fuzzer's 1 KB
/// at depth 38 took 17 s; at 24 it is a fraction of a second.
const PARSER_RECURSION_LIMIT: usize = 24;

/// The deepest nesting of `[` brackets accepted. sqlparser retries the
/// parse of a subscript after a compound name (`a.b[c.d.a.b[…`) several
/// ways, so its time grows about sevenfold per level: 1 KB of such text took
/// it 93 s. quarry has no arrays, so deep brackets are refused up front.
const MAX_BRACKET_DEPTH: usize = 5;

fn check_bracket_depth(text: &str) -> Result<()> {
    // (a text that does not tokenize is left to the parser's error)
    let Ok(tokens) =
        sqlparser::tokenizer::Tokenizer::new(&GenericDialect {}, text).tokenize_with_location()
    else {
        return Ok(());
    };
    let mut depth = 0usize;
    for t in tokens {
        match t.token {
            Token::LBracket => {
                depth += 1;
                if depth > MAX_BRACKET_DEPTH {
                    let at = t.span.start;
                    return Err(QuarryError::Syntax {
                        message: format!("brackets [ ] nested more than {MAX_BRACKET_DEPTH} deep"),
                        location: Some(Location {
                            line: at.line,
                            column: at.column,
                        }),
                    });
                }
            }
            Token::RBracket => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_statements(text: &str) -> std::result::Result<Vec<QuarryStatement>, ParserError> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .try_with_sql(text)?;
    let mut out = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token_ref().token == Token::EOF {
            break;
        }
        if is_create_external(&parser) {
            out.push(parse_create_external(&mut parser)?);
        } else {
            out.push(QuarryStatement::Sql(Box::new(parser.parse_statement()?)));
        }
        let next = parser.peek_token();
        if !matches!(next.token, Token::SemiColon | Token::EOF) {
            return parser.expected("end of statement", next);
        }
    }
    Ok(out)
}

fn is_keyword(parser: &Parser, n: usize, k: Keyword) -> bool {
    matches!(&parser.peek_nth_token_ref(n).token, Token::Word(w) if w.keyword == k)
}

fn is_create_external(parser: &Parser) -> bool {
    is_keyword(parser, 0, Keyword::CREATE)
        && (is_keyword(parser, 1, Keyword::EXTERNAL)
            || (is_keyword(parser, 1, Keyword::OR) && is_keyword(parser, 3, Keyword::EXTERNAL)))
}

fn parse_create_external(parser: &mut Parser) -> std::result::Result<QuarryStatement, ParserError> {
    parser.expect_keyword(Keyword::CREATE)?;
    let or_replace = parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
    parser.expect_keywords(&[Keyword::EXTERNAL, Keyword::TABLE])?;
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_identifier()?.value;
    if parser.peek_token_ref().token == Token::LParen {
        let t = parser.peek_token();
        return parser.expected(
            "STORED AS (the columns come from the file, not a column list)",
            t,
        );
    }
    parser.expect_keywords(&[Keyword::STORED, Keyword::AS])?;
    let format = parser.parse_identifier()?.value.to_lowercase();
    parser.expect_keyword(Keyword::LOCATION)?;
    let location = parser.parse_literal_string()?;
    Ok(QuarryStatement::CreateExternalTable {
        name,
        format,
        location,
        or_replace,
        if_not_exists,
    })
}

/// Line and column just past the end of `text` (where an "unexpected end"
/// error points).
fn end_of(text: &str) -> Location {
    let trimmed = text.trim_end();
    let line = trimmed.lines().count().max(1) as u64;
    let column = trimmed.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
    Location { line, column }
}

fn syntax_error(e: ParserError, text: &str) -> QuarryError {
    let raw = match &e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "the statement is nested too deeply".to_string(),
    };
    // sqlparser ends its messages with " at Line: L, Column: C".
    let (message, location) = match raw.rfind(" at Line: ") {
        Some(pos) => {
            let tail = &raw[pos + " at Line: ".len()..];
            let mut parts = tail.split(", Column: ");
            let line = parts.next().and_then(|l| l.trim().parse().ok());
            let column = parts.next().and_then(|c| c.trim().parse().ok());
            match (line, column) {
                (Some(line), Some(column)) => {
                    (raw[..pos].to_string(), Some(Location { line, column }))
                }
                _ => (raw.clone(), None),
            }
        }
        None if raw.contains("found: EOF") => (
            raw.replace("found: EOF", "found: end of input"),
            Some(end_of(text)),
        ),
        None => (raw.clone(), None),
    };
    let message = match location {
        Some(l) => format!("{message} at {l}"),
        None => message,
    };
    QuarryError::Syntax { message, location }
}

/// The location of an AST node's start, if the parser recorded one.
pub fn location_of(span: sqlparser::tokenizer::Span) -> Option<Location> {
    (span.start.line > 0).then_some(Location {
        line: span.start.line,
        column: span.start.column,
    })
}
