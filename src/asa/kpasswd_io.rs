//! One change-password exchange (RFC 3244) over TCP: the request is built once connected, from
//! the local address (the KRB-PRIV s-address MIT's client sends), and the reply read back.
//! The messages are `krb::kdc_client::kpasswd`'s; the password never leaves this call.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::kdc_io::{self, KdcIoError};
use crate::krb::kdc_client::as_req::AsTicket;
use crate::krb::kdc_client::kpasswd::{self, ChangeRequest, KpasswdError, SenderAddress};

/// Why a change failed: the password did not change.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Network.
    #[error(transparent)]
    Io(#[from] KdcIoError),
    /// Refused, or a reply that does not check out.
    #[error(transparent)]
    Kpasswd(#[from] KpasswdError),
}

/// `host:port` of kpasswd: `given`, else the KDC's host on port 464.
pub fn kpasswd_addr(given: Option<&str>, kdc: &str) -> String {
    given.map(str::to_string).unwrap_or_else(|| {
        let host = kdc.rsplit_once(':').map(|(h, _)| h).unwrap_or(kdc);
        format!("{host}:464")
    })
}

/// Changes the password of `tkt.client` (a ticket for `kadmin/changepw` from an AS exchange)
/// to `password` through the kpasswd server at `addr`.
pub async fn change_password(
    addr: &str,
    timeout: Duration,
    tkt: &AsTicket,
    password: &[u8],
) -> Result<(), ChangeError> {
    let mut pending = None;
    let mut build_error = None;
    let (reply, _) = kdc_io::exchange_with(addr, timeout, |local| {
        let sender = match local {
            IpAddr::V4(a) => SenderAddress::Ipv4(a.octets()),
            IpAddr::V6(a) => SenderAddress::Ipv6(a.octets()),
        };
        match kpasswd::build_change_request(&ChangeRequest {
            client: &tkt.client,
            ticket: &tkt.ticket,
            session_key: &tkt.session_key,
            new_password: password,
            now: SystemTime::now(),
            sender,
        }) {
            Ok((msg, p)) => {
                pending = Some(p);
                msg
            }
            Err(e) => {
                build_error = Some(e);
                Vec::new()
            }
        }
    })
    .await?;
    if let Some(e) = build_error {
        return Err(e.into());
    }
    match pending {
        Some(p) => Ok(p.read_reply(&reply)?),
        None => Err(KpasswdError::Malformed("no request was sent".into()).into()),
    }
}
