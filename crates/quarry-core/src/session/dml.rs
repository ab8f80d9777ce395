//! The statements that put rows somewhere: INSERT INTO a table made by
//! CREATE TABLE, COPY a query or table TO a file, COPY a file FROM into a
//! table. Tables that live in files are not written to.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{new_null_array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use sqlparser::ast::{self, CopyOption, CopySource, CopyTarget};

use super::{object_name, poisoned, QueryResult, Session};
use crate::catalog::{closest, CatalogEntry, FileFormat, FileWriter, MemTable, WriteOptions};
use crate::error::{QuarryError, Result};
use crate::exec::expr::cast_checked;

impl Session {
    /// `INSERT INTO t [(cols)] VALUES … | SELECT …`: the number of rows.
    pub(super) fn insert(&self, ins: &ast::Insert) -> Result<QueryResult> {
        let unsupported = [
            (
                ins.or.is_some() || ins.replace_into,
                "OR REPLACE / REPLACE INTO",
            ),
            (ins.ignore, "IGNORE"),
            (ins.overwrite, "OVERWRITE"),
            (!ins.assignments.is_empty(), "SET"),
            (ins.partitioned.is_some(), "PARTITION"),
            (ins.on.is_some(), "ON CONFLICT"),
            (ins.returning.is_some(), "RETURNING"),
            (ins.table_alias.is_some(), "a table alias"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
            return Err(QuarryError::plan(format!(
                "{what} in INSERT is not supported"
            )));
        }
        let ast::TableObject::TableName(name) = &ins.table else {
            return Err(QuarryError::plan(
                "INSERT INTO a table function is not supported",
            ));
        };
        let name = object_name(name)?;
        let Some(source) = &ins.source else {
            return Err(QuarryError::plan(format!(
                "INSERT INTO {name} needs VALUES or a query"
            )));
        };
        let columns: Vec<String> = ins.columns.iter().map(|c| c.to_string()).collect();
        // check the table before running the query
        self.memory_table(&name)?;
        let (result, _) = self.run_query(source)?;
        let rows = self.append(&name, &columns, result)?;
        count_result(rows)
    }

    /// `COPY (query) | t [(cols)] TO 'file' [(FORMAT parquet|csv|json,
    /// HEADER, DELIMITER 'c')]` and `COPY t [(cols)] FROM 'file' [(FORMAT
    /// …)]`.
    pub(super) fn copy(
        &self,
        source: &CopySource,
        to: bool,
        target: &CopyTarget,
        options: &[CopyOption],
        legacy_options: &[ast::CopyLegacyOption],
    ) -> Result<QueryResult> {
        let path =
            match target {
                CopyTarget::File { filename } => filename.clone(),
                _ => return Err(QuarryError::plan(
                    "COPY needs a file name ('path'); STDIN, STDOUT and PROGRAM are not supported",
                )),
            };
        if let Some(o) = legacy_options.first() {
            return Err(QuarryError::plan(format!(
                "COPY option {o} is not supported"
            )));
        }
        let mut format = FileFormat::of_path(&path);
        let mut header = true;
        let mut delimiter = b',';
        let mut csv_option = None;
        for o in options {
            match o {
                CopyOption::Format(f) => {
                    format = Some(match f.value.to_ascii_lowercase().as_str() {
                        "parquet" => FileFormat::Parquet,
                        "csv" => FileFormat::Csv,
                        "json" | "ndjson" => FileFormat::Json,
                        other => {
                            return Err(QuarryError::plan(format!(
                                "COPY FORMAT {other} is not supported (parquet, csv and json are)"
                            )))
                        }
                    })
                }
                CopyOption::Header(h) => {
                    header = *h;
                    csv_option = Some("HEADER");
                }
                CopyOption::Delimiter(c) if c.is_ascii() => {
                    delimiter = *c as u8;
                    csv_option = Some("DELIMITER");
                }
                other => {
                    return Err(QuarryError::plan(format!(
                        "COPY option {other} is not supported (FORMAT, HEADER and DELIMITER are)"
                    )))
                }
            }
        }
        let Some(format) = format else {
            return Err(QuarryError::plan(format!(
                "say which format '{path}' is: COPY … (FORMAT parquet), (FORMAT csv) or (FORMAT json)"
            )));
        };
        if let Some(option) = csv_option.filter(|_| format != FileFormat::Csv) {
            return Err(QuarryError::plan(format!(
                "COPY option {option} is for CSV files only"
            )));
        }
        if to {
            let query = match source {
                CopySource::Query(q) => (**q).clone(),
                CopySource::Table {
                    table_name,
                    columns,
                } => {
                    let list: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
                    let list = if list.is_empty() {
                        "*".to_string()
                    } else {
                        list.join(", ")
                    };
                    single_query(&format!("SELECT {list} FROM {table_name}"))?
                }
            };
            let options = WriteOptions {
                format,
                header,
                delimiter,
                threads: self.config().threads,
            };
            let memory = self.query_memory();
            // The file is opened at the first batch (which carries the
            // schema), or after the run for an empty result.
            let mut writer: Option<FileWriter> = None;
            let (schema, _) = self.run_query_each(&query, &memory, &mut |batch| {
                // (the run is over when the result comes: Ctrl-C is seen here)
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(QuarryError::Cancelled);
                }
                if writer.is_none() {
                    writer = Some(FileWriter::create(
                        &path,
                        batch.schema_ref(),
                        &options,
                        &memory,
                    )?);
                }
                match writer.as_mut() {
                    Some(w) => w.write(&batch),
                    None => Ok(()),
                }
            })?;
            let writer = match writer {
                Some(w) => w,
                None => FileWriter::create(&path, &schema, &options, &memory)?,
            };
            return count_result(writer.finish()?);
        }
        let CopySource::Table {
            table_name,
            columns,
        } = source
        else {
            return Err(QuarryError::plan(
                "COPY (query) FROM is not possible: copy FROM a file into a table",
            ));
        };
        if format == FileFormat::Csv && (!header || delimiter != b',') {
            return Err(QuarryError::plan(
                "COPY … FROM a CSV file reads a header line and commas only",
            ));
        }
        let name = object_name(table_name)?;
        self.memory_table(&name)?;
        let reader = match format {
            FileFormat::Parquet => "read_parquet",
            FileFormat::Csv => "read_csv",
            FileFormat::Json => "read_json",
        };
        let query = single_query(&format!(
            "SELECT * FROM {reader}('{}')",
            path.replace('\'', "''")
        ))?;
        let (result, _) = self.run_query(&query)?;
        let columns: Vec<String> = columns.iter().map(|c| c.value.clone()).collect();
        let rows = self.append(&name, &columns, result)?;
        count_result(rows)
    }

    /// The in-memory table `name`, or why it cannot take rows.
    fn memory_table(&self, name: &str) -> Result<Arc<dyn crate::catalog::TableProvider>> {
        let catalog = self.catalog.read().map_err(poisoned)?;
        match catalog.get(name) {
            Some(CatalogEntry::Table(t)) if t.as_memory().is_some() => Ok(t.clone()),
            Some(CatalogEntry::Table(t)) => Err(QuarryError::plan(format!(
                "'{name}' is a {} file table: rows go only into tables made by CREATE TABLE (COPY … TO writes files)",
                t.kind()
            ))),
            Some(CatalogEntry::View { .. }) => Err(QuarryError::plan(format!(
                "'{name}' is a view: rows go only into tables made by CREATE TABLE"
            ))),
            None => {
                let hint = closest(name, catalog.names().iter().map(|s| s.as_str()))
                    .map(|c| format!(", did you mean '{c}'?"))
                    .unwrap_or_default();
                Err(QuarryError::plan(format!("table '{name}' not found{hint}")))
            }
        }
    }

    /// Adds the rows of `result` to the in-memory table `name`: by position,
    /// or into the named `columns` with NULL in the others; each value cast
    /// to its column's type (an error where it does not fit). Returns the
    /// number of rows added.
    fn append(&self, name: &str, columns: &[String], result: QueryResult) -> Result<usize> {
        let table = self.memory_table(name)?;
        let Some(memory) = table.as_memory() else {
            return Err(QuarryError::plan(format!("'{name}' cannot take rows")));
        };
        let schema = table.schema();
        let targets: Vec<usize> = if columns.is_empty() {
            (0..schema.fields().len()).collect()
        } else {
            let mut targets = Vec::new();
            for c in columns {
                let i = schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(c))
                    .ok_or_else(|| {
                        let hint = closest(c, schema.fields().iter().map(|f| f.name().as_str()))
                            .map(|n| format!(", did you mean '{n}'?"))
                            .unwrap_or_default();
                        QuarryError::plan(format!("table '{name}' has no column '{c}'{hint}"))
                    })?;
                if targets.contains(&i) {
                    return Err(QuarryError::plan(format!("column '{c}' is named twice")));
                }
                targets.push(i);
            }
            targets
        };
        let given = result.schema.fields().len();
        if given != targets.len() {
            return Err(QuarryError::plan(format!(
                "table '{name}' takes {} columns here but the rows have {given}",
                targets.len()
            )));
        }
        // every column may hold the NULLs an INSERT leaves out
        let schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let mut batches = memory
            .batches()
            .iter()
            .map(|b| Ok(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?))
            .collect::<Result<Vec<_>>>()?;
        let mut rows = 0;
        for b in &result.batches {
            let columns = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| match targets.iter().position(|&t| t == i) {
                    Some(k) => cast_checked(b.column(k), f.data_type()).map_err(|e| {
                        QuarryError::exec(format!("column '{}' of '{name}': {e}", f.name()))
                    }),
                    None => Ok(new_null_array(f.data_type(), b.num_rows())),
                })
                .collect::<Result<Vec<_>>>()?;
            rows += b.num_rows();
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        let table = MemTable::new(schema, batches);
        self.catalog.write().map_err(poisoned)?.insert(
            name,
            CatalogEntry::Table(Arc::new(table)),
            true,
        )?;
        Ok(rows)
    }
}

/// The one query of `sql` (made by quarry from a name the user gave).
fn single_query(sql: &str) -> Result<ast::Query> {
    if let Some(crate::sql::QuarryStatement::Sql(statement)) = crate::sql::parse(sql)?.pop() {
        if let ast::Statement::Query(q) = *statement {
            return Ok(*q);
        }
    }
    Err(QuarryError::plan(format!("not a query: {sql}")))
}

/// A one-row result: how many rows a statement wrote.
fn count_result(rows: usize) -> Result<QueryResult> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::Int64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![rows as i64]))],
    )?;
    Ok(QueryResult {
        schema,
        batches: vec![batch],
    })
}
