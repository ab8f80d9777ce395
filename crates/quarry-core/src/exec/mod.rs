//! Operators, vectorized over Arrow arrays with the arrow compute kernels.

pub mod aggregate;
mod datetime;
pub mod decimal;
pub mod expr;
pub mod filter;
mod functions;
pub mod group_keys;
mod hyperloglog;
pub mod join;
mod key_bitmap;
pub mod key_filter;
mod key_ranks;
mod like;
pub mod operator;
pub(crate) mod regexp;
pub mod repartition;
pub mod series;
pub mod sort;
pub(crate) mod strftime;
pub mod timestamp;
pub mod view_compare;
pub mod window;
mod window_accumulate;
mod window_output;
