mod errors;
mod helpers;
mod idempotency;
mod races;
mod stream;
mod tokens;
