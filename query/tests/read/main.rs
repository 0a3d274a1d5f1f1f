mod access;
mod helpers;
mod history;
mod live;
mod pagination;
mod projector;
