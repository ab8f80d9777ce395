//! The shell's state and what runs a text: statements go to the session,
//! dot commands (`.help`) change the shell. The interactive shell, `.read`,
//! `-c`, `-f`, script files and stdin all come through `Shell::run_text`, so a
//! script may hold dot commands too.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use clap::ValueEnum;
use sqlparser::ast::{self, Spanned, Statement};

use super::format::{OutputError, OutputFormat, Printer};
use super::graphviz::{explain_format, to_dot, ExplainFormat};
use super::helper::DOT_COMMANDS;
use super::input::{split, Piece, PieceKind};
use super::progress::ProgressMeter;
use super::report::render_error_at;
use super::trace::Profile;
use quarry_core::error::Location;
use quarry_core::sql::QuarryStatement;
use quarry_core::{QuarryError, QueryResult, Session};

/// Rows a table shows on a terminal unless `.maxrows` says otherwise.
pub const DEFAULT_MAXROWS: usize = 40;
/// How deep `.read` may nest (a file that reads itself stops here).
const MAX_READ_DEPTH: usize = 16;

pub const HELP: &str = "\
Statements end with ; and may span lines. Tab completes keywords, tables,
columns and (inside quotes) file paths. Ctrl-C cancels a running query; at an
empty prompt, a second Ctrl-C leaves.

.help                      this text
.tables                    list tables and views
.schema [TABLE]            the columns of every table, or of one
.mode [FORMAT]             output format: table|csv|tsv|json|ndjson|markdown|line
.timer on|off              show the run time of each statement
.maxrows N|off             tables longer than N rows show head and tail (terminal)
.read FILE                 run the statements and dot commands of FILE
.output [FILE]             send results to FILE (no FILE: back to the terminal)
.once FILE                 send the next result to FILE
.open PATH                 a table for each .parquet / .csv file of a directory
                           (or for one file), named after the file
.tpch SF [DIR]             TPC-H tables at scale factor SF (generated if missing)
.quit, .exit, Ctrl-D       leave

SET name = value; SHOW name;   settings: threads, target_partitions, and profile
                               (SET profile = 'trace.json' writes a Chrome trace)
EXPLAIN [ANALYZE] query;       plan and task graph (ANALYZE: run it, with figures)
EXPLAIN (FORMAT dot) query;    the task graph for Graphviz";

/// How a text ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every statement ran (errors, if any, did not stop it).
    Done,
    /// An error stopped it (bail).
    Failed,
    /// `.quit`, or the reader of the output went away: stop everything.
    Quit,
}

/// Where results go.
enum Output {
    Stdout,
    File(BufWriter<File>),
}

impl Output {
    fn create(path: &str) -> Result<Output, String> {
        let file = File::create(path).map_err(|e| format!("cannot write '{path}': {e}"))?;
        Ok(Output::File(BufWriter::new(file)))
    }
}

pub struct Shell<'a> {
    session: &'a Session,
    printer: Printer,
    output: Output,
    /// `.once FILE`: where the next result goes.
    once: Option<Output>,
    /// Stop a text at its first error.
    bail: bool,
    stdout_is_terminal: bool,
    /// Rows a table shows on the terminal.
    maxrows: Option<usize>,
    profile: Option<Profile>,
    progress: Option<ProgressMeter>,
    /// Errors so far (for the exit code of batch runs).
    pub errors: usize,
    depth: usize,
    broken_pipe: bool,
}

/// What the command line sets up.
pub struct Options {
    pub format: OutputFormat,
    pub bail: bool,
    pub interactive: bool,
    pub output: Option<PathBuf>,
    pub profile: Option<PathBuf>,
    /// Rows a table shows on a terminal (None: all).
    pub maxrows: Option<usize>,
}

impl<'a> Shell<'a> {
    pub fn new(session: &'a Session, options: Options) -> Result<Self, String> {
        let stdout_is_terminal = io::stdout().is_terminal();
        let output = match &options.output {
            Some(path) => Output::create(&path.to_string_lossy())?,
            None => Output::Stdout,
        };
        // A bar is for a person watching: stderr must be a terminal, and so
        // must the output unless the shell is interactive.
        let progress = (io::stderr().is_terminal() && (options.interactive || stdout_is_terminal))
            .then(|| ProgressMeter::install(session));
        Ok(Shell {
            session,
            printer: Printer {
                ok_for_statements: options.interactive,
                ..Printer::new(options.format)
            },
            output,
            once: None,
            bail: options.bail,
            stdout_is_terminal,
            maxrows: options.maxrows,
            profile: options.profile.map(Profile::new),
            progress,
            errors: 0,
            depth: 0,
            broken_pipe: false,
        })
    }

    pub fn session(&self) -> &'a Session {
        self.session
    }

    /// Whether an error stops the run.
    pub fn bails(&self) -> bool {
        self.bail
    }

    /// Runs the statements and dot commands of `text`; `source` names the
    /// file in error messages.
    pub fn run_text(&mut self, text: &str, source: Option<&str>) -> Status {
        for piece in split(text) {
            let ok = match piece.kind {
                PieceKind::Dot => match self.dot_command(piece.text) {
                    Ok(Status::Done) => true,
                    Ok(Status::Failed) => false,
                    Ok(Status::Quit) => return Status::Quit,
                    Err(message) => {
                        eprintln!("Error: {message}");
                        self.errors += 1;
                        false
                    }
                },
                PieceKind::Sql => self.statement(&piece, text, source),
            };
            if self.broken_pipe {
                return Status::Quit;
            }
            if !ok && self.bail {
                return Status::Failed;
            }
        }
        Status::Done
    }

    /// Runs one statement; errors are reported here. False on an error.
    fn statement(&mut self, piece: &Piece, text: &str, source: Option<&str>) -> bool {
        let at = Position::of(piece);
        let outcome = self.try_statement(piece.text);
        // `.once` is for the statement after it, whatever its fate.
        self.once = None;
        match outcome {
            Ok(()) => true,
            Err(StatementError::Query(e, shift)) => {
                // Line 0 is sqlparser's "somewhere": no place to show.
                let location = e
                    .location()
                    .filter(|l| l.line > 0)
                    .map(|l| at.add(shift).apply(l));
                eprint!("{}", render_error_at(&e, text, location, source));
                self.errors += 1;
                false
            }
            Err(StatementError::Output(e)) if e.is_broken_pipe() => {
                self.broken_pipe = true;
                true
            }
            Err(StatementError::Output(e)) => {
                eprintln!("Error: cannot write the output: {e}");
                self.errors += 1;
                false
            }
            Err(StatementError::Other(message)) => {
                eprintln!("Error: {message}");
                self.errors += 1;
                false
            }
        }
    }

    fn try_statement(&mut self, sql: &str) -> Result<(), StatementError> {
        let started = Instant::now();
        let statement = match quarry_core::sql::parse(sql)
            .map_err(StatementError::query)?
            .pop()
        {
            Some(QuarryStatement::Sql(s)) => Some(s),
            _ => None,
        };
        if let Some(statement) = &statement {
            if let Some(result) = self.shell_statement(statement, sql) {
                return result;
            }
        }
        let runs_query = statement.as_deref().is_some_and(runs_a_query);
        let guard = self.progress.as_ref().map(ProgressMeter::start);
        let result = self.session.sql(sql);
        // The bar is gone before anything else is written.
        drop(guard);
        let result = result.map_err(StatementError::query)?;
        let elapsed = started.elapsed();
        self.emit(|printer, out| printer.print(out, &result, elapsed))?;
        if let (true, Some(profile)) = (runs_query, &mut self.profile) {
            if let Some(stats) = self.session.last_run_stats() {
                profile.record(sql, started, &stats).map_err(|e| {
                    StatementError::Other(format!(
                        "cannot write the profile '{}': {e}",
                        profile.path().display()
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// Statements the shell answers itself: `SET profile`, `SHOW profile`
    /// and `EXPLAIN (FORMAT dot)`. None for the others.
    fn shell_statement(
        &mut self,
        statement: &Statement,
        sql: &str,
    ) -> Option<Result<(), StatementError>> {
        match statement {
            Statement::Set(ast::Set::SingleAssignment {
                variable, values, ..
            }) if variable.to_string().eq_ignore_ascii_case("profile") => {
                Some(self.set_profile(values).map_err(StatementError::Other))
            }
            Statement::ShowVariable { variable }
                if variable.len() == 1 && variable[0].value.eq_ignore_ascii_case("profile") =>
            {
                let value = match &self.profile {
                    Some(p) => p.path().display().to_string(),
                    None => "off".to_string(),
                };
                Some(
                    strings_result("profile", value)
                        .map_err(StatementError::query)
                        .and_then(|r| {
                            self.emit(|printer, out| printer.print(out, &r, Default::default()))
                        }),
                )
            }
            _ => match explain_format(statement)? {
                Err(e) => Some(Err(StatementError::query(e))),
                Ok(ExplainFormat::Text) => None,
                Ok(ExplainFormat::Dot) => Some(self.explain_dot(statement, sql)),
            },
        }
    }

    fn explain_dot(&mut self, statement: &Statement, sql: &str) -> Result<(), StatementError> {
        let Statement::Explain {
            statement: inner,
            analyze,
            ..
        } = statement
        else {
            return Ok(());
        };
        if *analyze {
            return Err(StatementError::query(QuarryError::plan(
                "EXPLAIN ANALYZE (FORMAT dot) is not supported: use EXPLAIN (FORMAT dot) for the graph",
            )));
        }
        // Plan the query as written, so that errors point into the text.
        let start = inner.span().start;
        let (query, shift) = match offset_of(sql, start.line, start.column) {
            Some(offset) if start.line > 0 => (&sql[offset..], Some(start)),
            _ => (sql, None),
        };
        let graph = self.session.task_graph(query).map_err(|e| match shift {
            Some(at) => StatementError::Query(e, Position::from(at)),
            None => StatementError::Query(e, Position::ORIGIN),
        })?;
        let dot = to_dot(&graph);
        self.emit(|printer, out| printer.print_raw(out, &dot))
    }

    fn set_profile(&mut self, values: &[ast::Expr]) -> Result<(), String> {
        let value = match values {
            [ast::Expr::Value(v)] => match &v.value {
                ast::Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            [ast::Expr::Identifier(i)] if i.quote_style.is_none() => {
                match i.value.to_lowercase().as_str() {
                    "off" | "none" => Some(String::new()),
                    _ => None,
                }
            }
            _ => None,
        };
        match value {
            None => Err("usage: SET profile = 'FILE.json' (or = off)".into()),
            Some(path) if path.is_empty() => {
                self.profile = None;
                self.ok()
            }
            Some(path) => {
                // Fail now, not after the first query, if the file cannot be written.
                File::create(&path).map_err(|e| format!("cannot write '{path}': {e}"))?;
                self.profile = Some(Profile::new(PathBuf::from(path)));
                self.ok()
            }
        }
    }

    /// `OK` in the shell, nothing in a script.
    fn ok(&mut self) -> Result<(), String> {
        let empty = QueryResult::empty();
        self.emit(|printer, out| printer.print(out, &empty, Default::default()))
            .map_err(|e| match e {
                StatementError::Output(e) => format!("cannot write the output: {e}"),
                _ => "cannot write the output".into(),
            })
    }

    /// Writes to the current output (the `.once` file, the `.output` file or
    /// stdout), with decoration only for a terminal.
    fn emit(
        &mut self,
        write: impl FnOnce(&Printer, &mut dyn Write) -> Result<(), OutputError>,
    ) -> Result<(), StatementError> {
        let mut printer = self.printer.clone();
        if self.stdout_is_terminal {
            printer.footer = true;
            printer.maxrows = self.maxrows;
        }
        let once = self.once.take();
        let result = match once.map_or(&mut self.output, |o| self.once.insert(o)) {
            Output::Stdout => write(&printer, &mut BufWriter::new(io::stdout().lock())),
            Output::File(file) => {
                printer.footer = false;
                printer.maxrows = None;
                write(&printer, file)
            }
        };
        // `.once` is used up (and its file closed) by one result.
        self.once = None;
        result.map_err(StatementError::Output)
    }

    fn dot_command(&mut self, line: &str) -> Result<Status, String> {
        let line = line.trim().trim_end_matches(';').trim_end();
        let (command, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(c, r)| (c, r.trim()));
        let args: Vec<&str> = rest.split_whitespace().collect();
        match (command, args.as_slice()) {
            (".quit" | ".exit", []) => return Ok(Status::Quit),
            (".help", []) => self.say(HELP)?,
            (".tables", []) => {
                let names = self.session.table_names();
                self.say(&names.join("\n"))?;
            }
            (".schema", []) => {
                let mut text = Vec::new();
                for name in self.session.table_names() {
                    text.push(self.schema(&name)?);
                }
                self.say(&text.join("\n"))?;
            }
            (".schema", [name]) => {
                let text = self.schema(name)?;
                self.say(&text)?;
            }
            (".mode", []) => self.say(&self.printer.format.name())?,
            (".mode", [name]) => match OutputFormat::from_str(name, true) {
                Ok(format) => self.printer.format = format,
                Err(_) => {
                    return Err(format!(
                        "unknown mode '{name}' ({})",
                        OutputFormat::names().replace('|', ", ")
                    ))
                }
            },
            (".timer", ["on"]) => self.printer.timer = true,
            (".timer", ["off"]) => self.printer.timer = false,
            (".maxrows", []) => {
                let value = self.maxrows.map_or("off".into(), |n| n.to_string());
                self.say(&value)?;
            }
            (".maxrows", [n]) => {
                self.maxrows = match n.parse::<usize>() {
                    Ok(0) => None,
                    Ok(n) => Some(n),
                    Err(_) if n.eq_ignore_ascii_case("off") => None,
                    Err(_) => return Err(format!("'{n}' is not a number of rows: .maxrows N|off")),
                }
            }
            (".read", [_, ..]) => return self.read(rest),
            (".output", []) => self.output = Output::Stdout,
            (".output", [_, ..]) => self.output = Output::create(rest)?,
            (".once", [_, ..]) => self.once = Some(Output::create(rest)?),
            (".open", [_, ..]) => self.open(rest)?,
            (".tpch", [sf]) => self.tpch(sf, None)?,
            (".tpch", [sf, dir]) => self.tpch(sf, Some(dir))?,
            _ => return Err(usage(command)),
        }
        Ok(Status::Done)
    }

    /// A shell message (not a result): to stdout, like sqlite's and DuckDB's.
    fn say(&self, text: &str) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write the output: {e}"))
    }

    /// `name (\n    col TYPE,\n …\n);` from DESCRIBE.
    fn schema(&self, name: &str) -> Result<String, String> {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let described = self
            .session
            .sql(&format!("DESCRIBE {quoted}"))
            .map_err(|e| e.to_string())?;
        let mut columns = Vec::new();
        for batch in &described.batches {
            let text = |i: usize| -> Option<&StringArray> {
                batch
                    .columns()
                    .get(i)?
                    .as_any()
                    .downcast_ref::<StringArray>()
            };
            let (Some(names), Some(types)) = (text(0), text(1)) else {
                return Err("DESCRIBE gave an unexpected result".into());
            };
            for row in 0..batch.num_rows() {
                columns.push(format!("    {} {}", names.value(row), types.value(row)));
            }
        }
        Ok(format!("{name} (\n{}\n);", columns.join(",\n")))
    }

    fn read(&mut self, path: &str) -> Result<Status, String> {
        if self.depth >= MAX_READ_DEPTH {
            return Err(format!(
                ".read nests deeper than {MAX_READ_DEPTH} files (does '{path}' read itself?)"
            ));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read '{path}': {e}"))?;
        self.depth += 1;
        let status = self.run_text(&text, Some(path));
        self.depth -= 1;
        Ok(status)
    }

    /// `.open PATH`: every `.parquet` / `.csv` file (or Parquet directory)
    /// of a directory, or one file, as a table named after the file. PATH
    /// may be a URL of an object store (`s3://bucket/dir/`).
    fn open(&mut self, path: &str) -> Result<(), String> {
        let files = if quarry_core::catalog::store::is_remote(path) {
            self.remote_files(path)?
        } else {
            local_files(Path::new(path))?
        };
        let mut names = Vec::new();
        for file in files {
            let (Some(format), Some(name)) = (
                table_format(Path::new(&file)),
                Path::new(&file).file_stem().and_then(|s| s.to_str()),
            ) else {
                return Err(format!("'{file}' is not a .parquet or .csv file"));
            };
            let registered = match format {
                "parquet" => self.session.register_parquet(name, &file),
                _ => self.session.register_csv(name, &file),
            };
            registered.map_err(|e| e.to_string())?;
            names.push(name.to_string());
        }
        self.say(&format!(
            "{} table{}: {}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ))
    }

    /// The `.parquet` and `.csv` objects of a remote location: one object,
    /// or those under a prefix.
    fn remote_files(&self, location: &str) -> Result<Vec<String>, String> {
        if table_format(Path::new(location)).is_some() && !location.ends_with('/') {
            return Ok(vec![location.to_string()]);
        }
        let mut files = Vec::new();
        let mut first_error = None;
        for extension in ["parquet", "csv"] {
            match self.session.files_at(location, extension) {
                Ok(found) => files.extend(found),
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        match first_error {
            _ if !files.is_empty() => Ok(files),
            Some(e) if !e.starts_with("not found") => Err(e),
            _ => Err(format!("no .parquet or .csv files in '{location}'")),
        }
    }

    /// `.tpch SF [DIR]`: the 8 TPC-H tables, generated first when missing.
    fn tpch(&mut self, sf: &str, dir: Option<&str>) -> Result<(), String> {
        let sf: f64 = sf
            .parse()
            .map_err(|_| format!("'{sf}' is not a scale factor: .tpch SF [DIR], e.g. .tpch 0.1"))?;
        quarry_tpch::gen::validate_sf(sf).map_err(|e| e.to_string())?;
        let dir = dir.map_or_else(|| quarry_tpch::default_out_dir(sf), PathBuf::from);
        let missing = quarry_tpch::TABLES
            .iter()
            .any(|t| !dir.join(format!("{t}.parquet")).exists());
        if missing {
            self.say(&format!(
                "generating TPC-H SF {sf} into {} …",
                dir.display()
            ))?;
            quarry_tpch::generate(sf, &dir).map_err(|e| e.to_string())?;
        }
        quarry_tpch::register_tables(self.session, &dir).map_err(|e| e.to_string())?;
        self.say(&format!(
            "TPC-H SF {sf} from {}: {}",
            dir.display(),
            quarry_tpch::TABLES.join(", ")
        ))
    }
}

/// The `.parquet` / `.csv` files (or Parquet directories) of a local
/// directory, or the one file `path` names, as UTF-8 paths.
fn local_files(path: &Path) -> Result<Vec<String>, String> {
    let files: Vec<PathBuf> = if path.is_dir() && table_format(path).is_none() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("cannot read '{}': {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| table_format(p).is_some())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("no .parquet or .csv files in '{}'", path.display()));
        }
        files
    } else if path.exists() {
        vec![path.to_path_buf()]
    } else {
        return Err(format!("'{}' does not exist", path.display()));
    };
    files
        .into_iter()
        .map(|f| match f.to_str() {
            Some(s) if table_format(&f).is_some() => Ok(s.to_string()),
            _ => Err(format!(
                "'{}' is not a .parquet or .csv file with a UTF-8 name",
                f.display()
            )),
        })
        .collect()
}

/// `parquet` or `csv` by file extension.
fn table_format(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_lowercase().as_str() {
        "parquet" => Some("parquet"),
        "csv" => Some("csv"),
        _ => None,
    }
}

fn usage(command: &str) -> String {
    let form = match command {
        ".schema" => ".schema [TABLE]",
        ".mode" => ".mode [table|csv|tsv|json|ndjson|markdown|line]",
        ".timer" => ".timer on|off",
        ".maxrows" => ".maxrows N|off",
        ".read" => ".read FILE",
        ".output" => ".output [FILE]",
        ".once" => ".once FILE",
        ".open" => ".open PATH",
        ".tpch" => ".tpch SF [DIR]",
        ".help" | ".tables" | ".quit" | ".exit" => command,
        _ => {
            let hint = quarry_core::catalog::closest(command, DOT_COMMANDS.iter().copied())
                .map(|c| format!(", did you mean '{c}'?"))
                .unwrap_or_default();
            return format!("unknown command '{command}'{hint} (.help lists them)");
        }
    };
    format!("usage: {form}")
}

/// Whether a statement runs a task graph (and so has figures for a profile).
fn runs_a_query(statement: &Statement) -> bool {
    match statement {
        Statement::Query(_) => true,
        Statement::Explain { analyze, .. } => *analyze,
        Statement::CreateTable(ct) => ct.query.is_some(),
        _ => false,
    }
}

/// A one-row, one-column result.
fn strings_result(name: &str, value: String) -> quarry_core::Result<QueryResult> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
    let column: ArrayRef = Arc::new(StringArray::from(vec![value]));
    let batch = RecordBatch::try_new(schema.clone(), vec![column])?;
    Ok(QueryResult {
        schema,
        batches: vec![batch],
    })
}

/// The byte offset of a 1-based line and column (in characters) of `text`.
fn offset_of(text: &str, line: u64, column: u64) -> Option<usize> {
    let mut offset = 0;
    for _ in 1..line {
        offset += text[offset..].find('\n')? + 1;
    }
    let skip = usize::try_from(column.checked_sub(1)?).ok()?;
    text[offset..]
        .char_indices()
        .nth(skip)
        .map(|(n, _)| offset + n)
}

/// Where a piece of text starts in a larger one (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    line: u64,
    column: u64,
}

impl Position {
    const ORIGIN: Position = Position { line: 1, column: 1 };

    fn of(piece: &Piece) -> Self {
        Position {
            line: piece.line,
            column: piece.column,
        }
    }

    /// A place given relative to this position, made absolute.
    fn apply(self, at: Location) -> Location {
        Location {
            line: at.line + self.line - 1,
            column: if at.line == 1 {
                at.column + self.column - 1
            } else {
                at.column
            },
        }
    }

    /// The position of `inner` (relative to this one), made absolute.
    fn add(self, inner: Position) -> Position {
        let at = self.apply(Location {
            line: inner.line,
            column: inner.column,
        });
        Position {
            line: at.line,
            column: at.column,
        }
    }
}

impl From<sqlparser::tokenizer::Location> for Position {
    fn from(at: sqlparser::tokenizer::Location) -> Self {
        Position {
            line: at.line.max(1),
            column: at.column.max(1),
        }
    }
}

enum StatementError {
    /// An error of the engine; its place is relative to the given position
    /// within the statement.
    Query(QuarryError, Position),
    Output(OutputError),
    Other(String),
}

impl StatementError {
    fn query(e: QuarryError) -> Self {
        StatementError::Query(e, Position::ORIGIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_move_places() {
        let at = Position { line: 3, column: 5 };
        assert_eq!(
            at.apply(Location { line: 1, column: 2 }),
            Location { line: 3, column: 6 }
        );
        assert_eq!(
            at.apply(Location { line: 2, column: 2 }),
            Location { line: 4, column: 2 }
        );
        assert_eq!(at.add(Position::ORIGIN), at);
    }

    #[test]
    fn offsets_of_lines_and_columns() {
        let text = "ab\ncdé f";
        assert_eq!(offset_of(text, 1, 1), Some(0));
        assert_eq!(offset_of(text, 2, 1), Some(3));
        assert_eq!(offset_of(text, 2, 5), Some(8));
        assert_eq!(offset_of(text, 3, 1), None);
        assert_eq!(offset_of(text, 1, 0), None);
    }

    #[test]
    fn unknown_dot_commands_suggest_the_closest() {
        assert_eq!(
            usage(".tabels"),
            "unknown command '.tabels', did you mean '.tables'? (.help lists them)"
        );
        assert_eq!(usage(".timer"), "usage: .timer on|off");
    }
}
