//! Writes the seed inputs of the fuzz targets into `fuzz/seeds/<target>/`:
//!
//! - `sql_frontend`: the 22 TPC-H queries and every statement of
//!   `tests/slt/*.slt` (raw-text mode, first byte 0), and a few grammar-mode
//!   inputs (first byte 1);
//! - `file_reader`: Parquet files of every column type, codec, encoding and
//!   row-group layout (first byte 0), and CSV files (first byte 1).
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, ListArray, StringArray, StringViewArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = root.parent().expect("fuzz/ is inside the repository");
    let sql_dir = root.join("seeds/sql_frontend");
    let file_dir = root.join("seeds/file_reader");
    std::fs::create_dir_all(&sql_dir).unwrap();
    std::fs::create_dir_all(&file_dir).unwrap();

    // ---- SQL
    let mut n = 0;
    let mut put_sql = |text: &str, mode: u8| {
        let mut bytes = vec![mode];
        bytes.extend_from_slice(text.trim().as_bytes());
        n += 1;
        std::fs::write(sql_dir.join(format!("seed{n:04}")), bytes).unwrap();
    };
    for q in quarry_tpch::QUERIES {
        put_sql(q, 0);
    }
    let mut slt: Vec<PathBuf> = std::fs::read_dir(repo.join("tests/slt"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    slt.sort();
    for file in slt {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.starts_with("query") || line.starts_with("statement") {
                let mut sql = String::new();
                for l in lines.by_ref() {
                    if l.trim().is_empty() || l.starts_with("----") {
                        break;
                    }
                    sql.push_str(l);
                    sql.push('\n');
                }
                if !sql.contains("__DATA__") {
                    put_sql(&sql, 0);
                }
            }
        }
    }
    let mut rng = quarry_fuzz::Rng::new(1);
    for _ in 0..64 {
        let len = 8 + rng.below(120);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut with_mode = vec![1u8];
        with_mode.extend(bytes);
        n += 1;
        std::fs::write(sql_dir.join(format!("seed{n:04}")), with_mode).unwrap();
    }
    println!("{n} SQL seeds in {}", sql_dir.display());

    // ---- Parquet
    let typed = quarry_fuzz::typed_batch();
    let mut files = 0;
    let mut put_file = |name: &str, mode: u8, bytes: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(bytes);
        files += 1;
        std::fs::write(file_dir.join(name), v).unwrap();
    };
    let parquet_bytes = |batches: &[RecordBatch], props: WriterProperties| -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batches[0].schema(), Some(props)).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        buf
    };
    let base = || WriterProperties::builder().set_max_row_group_row_count(Some(2));
    let variants: Vec<(&str, WriterProperties)> = vec![
        ("plain.parquet", base().build()),
        (
            "snappy.parquet",
            base().set_compression(Compression::SNAPPY).build(),
        ),
        (
            "zstd.parquet",
            base()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build(),
        ),
        (
            "gzip.parquet",
            base()
                .set_compression(Compression::GZIP(GzipLevel::default()))
                .build(),
        ),
        (
            "lz4.parquet",
            base().set_compression(Compression::LZ4_RAW).build(),
        ),
        (
            "nodict.parquet",
            base().set_dictionary_enabled(false).build(),
        ),
        (
            "nostats.parquet",
            base()
                .set_statistics_enabled(EnabledStatistics::None)
                .build(),
        ),
        (
            "pagestats.parquet",
            base()
                .set_statistics_enabled(EnabledStatistics::Page)
                .build(),
        ),
        (
            "v2.parquet",
            base()
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .build(),
        ),
        ("one_group.parquet", WriterProperties::builder().build()),
    ];
    for (name, props) in variants {
        put_file(name, 0, &parquet_bytes(&[typed.clone()], props));
    }
    // zero rows
    put_file(
        "empty_rows.parquet",
        0,
        &parquet_bytes(&[typed.slice(0, 0)], base().build()),
    );
    // Utf8View, a list column, and an Int64 key
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Utf8View, true),
        Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        ),
    ]));
    let other = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            Arc::new(StringViewArray::from(vec![
                Some("a long string value here"),
                None,
                Some("x"),
            ])),
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(vec![Some(1), None]),
                None,
                Some(vec![]),
            ])),
        ],
    )
    .unwrap();
    put_file(
        "view_list.parquet",
        0,
        &parquet_bytes(&[other], base().build()),
    );
    let strings = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["dup"; 40])) as ArrayRef],
    )
    .unwrap();
    put_file(
        "dict.parquet",
        0,
        &parquet_bytes(&[strings], base().build()),
    );

    // ---- CSV
    let csvs: &[(&str, &str)] = &[
        ("customers.csv", include_str!("../../crates/quarry-core/tests/data/customers.csv")),
        (
            "typed.csv",
            "a,b,c,d,e\n1,1.5,x,2020-01-01,true\n-2,,\"q,uoted\",1999-12-31,false\n3,1e10,\"multi\nline\",,\n",
        ),
        ("header_only.csv", "a,b,c\n"),
        ("crlf.csv", "a,b\r\n1,2\r\n3,4\r\n"),
        ("no_newline.csv", "a,b\n1,2\n3,4"),
        ("ragged.csv", "a,b\n1,2\n3\n4,5,6\n"),
        ("bad_number.csv", "n\n1\n2\nx\n"),
        ("latin1.csv", "name\ncaf\u{e9}\n"),
        ("quotes.csv", "a\n\"\"\"\"\n\"x\"\"y\"\n"),
        ("empty_fields.csv", ",,\n,,\n"),
    ];
    for (name, text) in csvs {
        put_file(name, 1, text.as_bytes());
    }
    let mut latin = b"name,v\n".to_vec();
    latin.extend_from_slice(b"caf\xe9,1\n\xff\xfe,2\n");
    put_file("invalid_utf8.csv", 1, &latin);
    println!("{files} file seeds in {}", file_dir.display());
}
