//! zun-compute-rs: a wire-compatible replacement for OpenStack Zun's `zun-compute`.
//!
//! # Layout
//! - [`oslo`]: the pure oslo.messaging codec (envelope, message, context, zun objects,
//!   failures, topology names). No IO.
//! - [`amqp`]: the only module that touches lapin: connection and failover, topology
//!   declaration, consumers, publisher confirms, replies.
//! - [`rpc`]: dispatch of decoded requests to handlers by method name; casts vs calls;
//!   maps errors to `zun.common.exception` failure payloads.
//! - [`compute`]: the domain: per-UUID serialized executor, one file per operation,
//!   container state machine, resource claims.
//! - [`docker`]: the only module that touches bollard.
//! - [`store`]: the only module that writes SQL (zun's MySQL schema, or embedded SQLite).
//! - [`periodic`], [`events`], [`admin`]: background duties, state notifications,
//!   health and metrics.
//! - [`openstack`]: the only module that speaks HTTP to OpenStack (Keystone, Placement).
//! - [`host`]: zun's volume mount points, and the only code that runs mount/mkfs.
//! - [`config`]: zun.conf (INI) plus `ZUN_<SECTION>__<KEY>` environment overrides.
#![forbid(unsafe_code)]

pub mod admin;
pub mod amqp;
pub mod cli;
pub mod compute;
pub mod config;
pub mod docker;
pub mod events;
pub mod host;
pub mod logging;
pub mod openstack;
pub use zun_oslo as oslo;
pub mod periodic;
pub mod rpc;
pub mod store;
pub mod worker;
