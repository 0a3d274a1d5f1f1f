//! natter as a library: the composition root ([`Node`]) that `natter serve` and the
//! whole-stack tests start, its configuration, and the parts every process serves beside its
//! roles (ops endpoints, the web page, the API descriptions).

pub mod api_doc;
pub mod config;
mod http;
pub mod node;
mod ops;
pub mod serve;
mod web;

pub use config::{Config, Role};
pub use node::{Node, Roles};
