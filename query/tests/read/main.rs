mod access;
mod audit;
mod helpers;
mod history;
mod live;
mod owners;
mod pagination;
mod projector;
