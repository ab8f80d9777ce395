//! quarry as a library: open a session, register a file as a table, answer
//! SQL over it and read the answer as Arrow record batches.
//!
//! ```sh
//! cargo run -p quarry-core --example embed
//! ```

use std::error::Error;

use arrow::util::pretty::pretty_format_batches;
use quarry_core::{Session, SessionConfig};

fn main() -> Result<(), Box<dyn Error>> {
    // A small CSV file to query (any Parquet, CSV or JSON file, directory,
    // glob or s3:// URL would do).
    let dir = std::env::temp_dir().join(format!("quarry-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join("trips.csv");
    std::fs::write(
        &csv,
        "city,km,minutes\nLyon,12.5,30\nParis,3.2,14\nLyon,7.0,21\nNantes,9.9,25\nParis,1.1,6\n",
    )?;

    // Two worker threads; the memory limit, temp directory and the other
    // settings keep their defaults (`SET name = value` changes them).
    let session = Session::new(SessionConfig::default().with_threads(2))?;
    session.register_csv("trips", &csv.display().to_string())?;

    let result = session.sql(
        "SELECT city, count(*) AS trips, sum(km) AS km, avg(minutes) AS minutes
         FROM trips GROUP BY city ORDER BY km DESC",
    )?;
    println!("{} rows, schema {:?}", result.num_rows(), result.schema);
    println!("{}", pretty_format_batches(&result.batches)?);

    // Files can be queried by path too, without registering them.
    let total = session.sql(&format!(
        "SELECT round(sum(km), 1) AS km FROM '{}'",
        csv.display()
    ))?;
    println!("{}", pretty_format_batches(&total.batches)?);

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
