//! The policy commands that need no gateway: `tollgate test` and `tollgate explain`. Both run
//! one request through the same decision functions the proxy calls (admission::*), over a plan
//! compiled against a private counter store, and never touch the network.

mod cases;
mod decide;
mod decide_tool;
pub mod explain;
pub mod policy_test;
mod request;
mod trace;
mod usage;

pub use explain::ExplainArgs;
pub use trace::Decision;
