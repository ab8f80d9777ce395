//! The logical plan: a small enum of relational operators with a schema on
//! every node, and the typed expressions they carry.

pub mod arrow_serde;
mod display;
pub mod expr;
pub mod logical;
pub mod repeated;
pub mod types;
pub mod window;

pub use expr::{AggFunc, AggregateExpr, BinaryOp, Expr, JoinKind, ScalarFunc, SortKey};
pub use logical::LogicalPlan;
pub use window::{FrameBound, FrameUnits, WindowExpr, WindowFrame, WindowFunc};
