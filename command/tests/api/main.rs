mod errors;
mod helpers;
mod idempotency;
mod owners;
mod races;
mod stream;
mod tokens;
