mod access;
mod audit;
mod helpers;
mod history;
mod live;
mod pagination;
mod projector;
