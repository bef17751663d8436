//! `silo serve`: a web dashboard, JSON API and `/metrics` over a repository's jobs and their run history
//! (issue 32). Pure parts — the view (model.rs), the charts (chart.rs), the HTML (pages.rs) — apart from
//! the HTTP server (server.rs). Upholds I26 (the dashboard widens no access) and I27 (the page says what
//! `silo status` says).

mod access;
mod actions;
pub mod auth;
pub mod chart;
pub mod model;
pub mod pages;
pub mod server;
mod state;
pub mod tls;
