//! The ASA credential life cycle (DESIGN.md §4): watching and hot-loading the keytab with
//! Latest/Previous retirement, the SPN plan and check, and rolling the ASA password through
//! the Kerberos change-password protocol.
//!
//! The protocol messages live in `krb::kdc_client` (pure); this module owns the file watching
//! and the sockets.

pub mod ad_check;
pub mod backups;
pub mod cas_commands;
pub mod credentials;
pub mod history;
pub mod kdc_io;
pub mod key_proof;
pub mod kpasswd_io;
pub mod member_validation;
pub mod password;
pub mod replicas;
pub mod roll;
pub mod secret_write;
pub mod spn;
pub mod spn_plan;
pub mod staged_roll;
pub mod watch;

pub use history::CredentialHistory;
pub use roll::{roll, RollError, RollOptions, RollReport};
pub use watch::{KeytabWatcher, ReloadError, WatchConfig, WatchStats};
