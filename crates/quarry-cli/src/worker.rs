//! `quarry worker`: the process that runs a cluster's tasks (see
//! `quarry_core::cluster::worker`).

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Subcommand;

use quarry_core::catalog::ObjectStores;
use quarry_core::cluster::exchange::ExchangeDir;
use quarry_core::cluster::worker::{Request, Worker, WorkerConfig};
use quarry_core::cluster::LISTENING;
use quarry_core::error::{QuarryError, Result};
use quarry_core::SessionConfig;

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Run one task and print its manifest (JSON)
    Run {
        /// The query's exchange directory (holds graph.json)
        #[arg(long, value_name = "DIR")]
        exchange: PathBuf,
        #[arg(long)]
        stage: usize,
        #[arg(long)]
        partition: usize,
        #[command(flatten)]
        budget: Budget,
    },
    /// Stay up and run the tasks drivers send (prints the address first)
    Serve {
        /// Address to listen on; port 0 picks a free one
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
        listen: String,
        /// Tasks to run at once (default: all cores)
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Exit when stdin reaches its end: a starter that holds the pipe
        /// (the Dask plugin) takes the worker with it when it dies
        #[arg(long)]
        exit_on_stdin_eof: bool,
        /// Print a line to stderr as each task starts and ends
        #[arg(long)]
        verbose: bool,
        #[command(flatten)]
        budget: Budget,
    },
}

/// A worker's memory budget and spill directory.
#[derive(Debug, clap::Args)]
pub struct Budget {
    /// Memory budget of the worker, e.g. 2GB (default: 75% of RAM)
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Directory for spill files (default: the system's temp directory)
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<String>,
}

impl Budget {
    fn config(&self, threads: Option<usize>, verbose: bool) -> Result<WorkerConfig> {
        let mut config = SessionConfig::default();
        if let Some(n) = threads {
            config = config.with_threads(n);
        }
        if let Some(v) = &self.memory_limit {
            config.set_memory_limit(v)?;
        }
        if let Some(v) = &self.temp_dir {
            config.set_temp_directory(v)?;
        }
        Ok(WorkerConfig {
            threads: config.threads,
            memory_limit: config.memory_limit,
            temp_dir: config.temp_directory,
            verbose,
        })
    }
}

pub fn run(cmd: WorkerCommand) -> Result<()> {
    match cmd {
        WorkerCommand::Run {
            exchange,
            stage,
            partition,
            budget,
        } => {
            let worker = Worker::new(budget.config(None, false)?);
            let request = Request {
                exchange: ExchangeDir::open(&exchange, &ObjectStores::default())?
                    .root()
                    .to_path_buf(),
                stage,
                partition,
                task_manifest: true,
            };
            let manifest = worker.run(&request, Arc::new(AtomicBool::new(false)))?;
            let text = serde_json::to_string(&manifest)
                .map_err(|e| QuarryError::exec(format!("internal error: {e}")))?;
            println!("{text}");
            Ok(())
        }
        WorkerCommand::Serve {
            listen,
            threads,
            exit_on_stdin_eof,
            verbose,
            budget,
        } => {
            if threads == Some(0) {
                return Err(QuarryError::Config("--threads must be at least 1".into()));
            }
            let worker = Arc::new(Worker::new(budget.config(threads, verbose)?));
            let listener = TcpListener::bind(&listen)
                .map_err(|e| QuarryError::Io(format!("cannot listen on {listen}: {e}")))?;
            let address = listener
                .local_addr()
                .map_err(|e| QuarryError::Io(format!("cannot listen on {listen}: {e}")))?;
            // The first line tells a starter where to connect.
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{LISTENING}{address}");
            let _ = out.flush();
            if exit_on_stdin_eof {
                exit_at_stdin_eof();
            }
            worker.serve(listener)
        }
    }
}

/// Ends the process when stdin ends: the kernel closes the pipe when the
/// process that holds its other end dies, however it dies.
fn exit_at_stdin_eof() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
}
