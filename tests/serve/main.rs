//! The `natter` binary as operators run it: each test is one operator's session with the
//! binary, on the process helpers here. The roles apart and together (`roles`), the
//! websocket gateway on its own (`gateway`), and the CLI tools (`cli`).

use std::process::Command;
use std::time::Duration;

use natter_testkit::api::Api;
use natter_testkit::process::NatterProcess;
use natter_testkit::ws::Ws;
use natter_testkit::{Cleanup, Isolation, nats_url};
use serde_json::{Value, json};

/// `natter serve --role role` of this build, on `isolation`'s stream with `database_url`.
fn natter(isolation: &Isolation, role: &str, database_url: &str) -> NatterProcess {
    NatterProcess::start(
        env!("CARGO_BIN_EXE_natter"),
        role,
        NatterProcess::env_for(isolation, &nats_url(), database_url),
    )
}

mod cli;
mod gateway;
mod roles;
