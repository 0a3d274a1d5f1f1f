mod access;
mod helpers;
mod history;
mod pagination;
mod projector;
