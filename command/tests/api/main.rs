mod errors;
mod helpers;
mod idempotency;
mod owners;
mod profile;
mod races;
mod stream;
mod tokens;
