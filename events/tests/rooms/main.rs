//! The room's rules, given → when → then over events: one scenario a rule, refusals included.

mod direct;
mod messages;
mod owners;
mod pairs;
mod rules;
mod social;
mod support;
