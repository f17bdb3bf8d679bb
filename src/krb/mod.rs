//! The Kerberos acceptor core: keytab, RFC 3961 crypto profile, GSS/SPNEGO framing, AP-REQ
//! validation, replay cache, PAC and AP-REP. Pure: no I/O, no tokio; time is passed in.

pub mod acceptor;
pub mod ad_account;
pub mod ap_req;
pub mod aprep;
pub mod authz;
pub mod crypto;
pub mod der;
pub mod der_back;
pub mod enc_ticket;
pub mod error;
pub mod framing;
pub mod gss;
pub mod gss_checksum;
pub mod kdc_client;
pub mod keyset;
pub mod keytab;
pub mod mint;
pub mod pac;
pub mod pac_identity;
pub mod principal;
pub mod replay;
pub mod spnego;
pub mod ticket_cache;
pub mod time;
