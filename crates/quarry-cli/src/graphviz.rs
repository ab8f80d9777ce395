//! `EXPLAIN (FORMAT dot) <query>`: the task graph for Graphviz
//! (`… | dot -Tsvg > graph.svg`). A node per stage with its pipeline and task
//! count; an edge per exchange (solid) and per hash-join build side (dashed).

use std::fmt::Write;

use sqlparser::ast::{AnalyzeFormat, AnalyzeFormatKind, Expr, Statement, UtilityOption, Value};

use quarry_core::graph::{OpSpec, Source, TaskGraph};
use quarry_core::QuarryError;

/// How an EXPLAIN statement wants its answer.
#[derive(Debug, PartialEq, Eq)]
pub enum ExplainFormat {
    /// The engine's text (the default, `FORMAT text`).
    Text,
    /// Graphviz DOT of the task graph.
    Dot,
}

/// The format that an EXPLAIN asks for, from `EXPLAIN (FORMAT dot)` or
/// `EXPLAIN FORMAT GRAPHVIZ`; None for other statements.
pub fn explain_format(statement: &Statement) -> Option<Result<ExplainFormat, QuarryError>> {
    let Statement::Explain {
        format, options, ..
    } = statement
    else {
        return None;
    };
    let mut wanted = match format {
        Some(AnalyzeFormatKind::Keyword(f) | AnalyzeFormatKind::Assignment(f)) => match f {
            AnalyzeFormat::GRAPHVIZ => ExplainFormat::Dot,
            AnalyzeFormat::TEXT => ExplainFormat::Text,
            other => return Some(Err(unsupported(&other.to_string()))),
        },
        None => ExplainFormat::Text,
    };
    for UtilityOption { name, arg } in options.iter().flatten() {
        if !name.value.eq_ignore_ascii_case("format") {
            return Some(Err(QuarryError::plan(format!(
                "unsupported EXPLAIN option '{}': EXPLAIN takes (FORMAT text|dot); \
                 use EXPLAIN ANALYZE … to run the query",
                name.value
            ))));
        }
        let value = match arg {
            Some(Expr::Identifier(ident)) => ident.value.clone(),
            Some(Expr::Value(v)) => match &v.value {
                Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Some(other) => other.to_string(),
            None => String::new(),
        };
        wanted = match value.to_lowercase().as_str() {
            "dot" | "graphviz" => ExplainFormat::Dot,
            "text" => ExplainFormat::Text,
            _ => return Some(Err(unsupported(&value))),
        };
    }
    Some(Ok(wanted))
}

fn unsupported(format: &str) -> QuarryError {
    QuarryError::plan(format!(
        "unsupported EXPLAIN format '{format}': use text or dot"
    ))
}

/// The task graph as a Graphviz digraph.
pub fn to_dot(graph: &TaskGraph) -> String {
    // The engine's one-line description of each stage, `Stage 0 [4 tasks]: …`.
    let text = graph.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut dot = String::from(
        "digraph task_graph {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
    );
    for (i, stage) in graph.stages.iter().enumerate() {
        let description = lines
            .get(i)
            .and_then(|l| l.split_once(": "))
            .map(|(_, rest)| rest)
            .unwrap_or("");
        let label = format!(
            "Stage {} · {} task{}\n{}",
            stage.id,
            stage.partitions,
            if stage.partitions == 1 { "" } else { "s" },
            description.replace(" → ", "\n→ ").replace(" ⇒ ", "\n⇒ ")
        );
        let _ = writeln!(dot, "  s{} [label=\"{}\"];", stage.id, escape(&label));
    }
    for stage in &graph.stages {
        if let Source::Exchange { stage: from } = stage.source {
            let _ = writeln!(dot, "  s{from} -> s{} [label=\"exchange\"];", stage.id);
        }
        if let Source::Union { inputs } = &stage.source {
            for (from, _) in inputs {
                let _ = writeln!(dot, "  s{from} -> s{} [label=\"union\"];", stage.id);
            }
        }
        for op in &stage.ops {
            if let OpSpec::HashJoin {
                build_stage,
                broadcast,
                ..
            } = op
            {
                let kind = if *broadcast {
                    "broadcast build"
                } else {
                    "partitioned build"
                };
                let _ = writeln!(
                    dot,
                    "  s{build_stage} -> s{} [label=\"{kind}\", style=dashed];",
                    stage.id
                );
            }
        }
    }
    dot.push_str("}\n");
    dot
}

/// A DOT string literal's content: quotes and backslashes escaped, line ends
/// as left-justified breaks.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\l")
        + "\\l"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &str) -> Statement {
        match quarry_core::sql::parse(sql).expect("parses").pop() {
            Some(quarry_core::sql::QuarryStatement::Sql(s)) => *s,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn formats_of_explain() {
        let format = |sql| explain_format(&statement(sql));
        assert!(format("SELECT 1").is_none());
        assert_eq!(
            format("EXPLAIN SELECT 1").and_then(Result::ok),
            Some(ExplainFormat::Text)
        );
        for sql in [
            "EXPLAIN (FORMAT dot) SELECT 1",
            "EXPLAIN (FORMAT 'DOT') SELECT 1",
            "EXPLAIN FORMAT GRAPHVIZ SELECT 1",
        ] {
            assert_eq!(
                format(sql).and_then(Result::ok),
                Some(ExplainFormat::Dot),
                "{sql}"
            );
        }
        let err = format("EXPLAIN (FORMAT json) SELECT 1")
            .expect("an explain")
            .expect_err("json is not supported");
        assert!(err.to_string().contains("'json'"), "{err}");
        let err = format("EXPLAIN (VERBOSE) SELECT 1")
            .expect("an explain")
            .expect_err("VERBOSE is not supported");
        assert!(err.to_string().contains("VERBOSE"), "{err}");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a \"b\"\nc\\"), "a \\\"b\\\"\\lc\\\\\\l");
    }
}
