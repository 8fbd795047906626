//! The black-box API suite: the same test bodies against the monolith and against microservices.

mod account;
mod channel;
mod contract;
mod conversations;
mod database;
mod desk;
mod edge;
mod helpers;
mod hostile;
mod members;
mod moves;
mod runbook;
mod supervision;
mod users;
