//! Reading the first PDU of a connection: 16 header bytes, then `frag_length` bounded by
//! `max_bind_bytes` (linkerd2-proxy's "detect" step; the bytes are kept to be replayed to the
//! backend unchanged).
//!
//! Memory follows the bytes that arrived, never the length a client claims: the buffer starts
//! at 4 KiB of uninitialised capacity and doubles as it fills, up to `frag_length`. A slow client
//! that announces 64 KiB and trickles costs what it sent (at most twice that), not 64 KiB per
//! connection.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::RpcEdgeError;
use crate::rpc::{pdu_length, CommonHeader, HEADER_LEN};

/// The first read asks for this much, so a typical bind (700–1,800 bytes) arrives in one call.
const FIRST_READ: usize = 4096;

/// The bytes of a connection's first PDU as they arrive. Lives outside the read future so a
/// timeout still knows how far the client got and whether its header can be answered.
#[derive(Debug, Default)]
pub struct FirstPdu {
    buf: Vec<u8>,
    /// The decoded common header, once 16 valid bytes arrived (call_id and drep for a bind_nak).
    pub header: Option<CommonHeader>,
    /// `frag_length`, once known and within the limit.
    pub need: Option<usize>,
}

impl FirstPdu {
    /// An empty reader state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.buf.len()
    }

    /// Everything received: the whole first PDU once [`FirstPdu::read_from`] succeeded, possibly
    /// followed by bytes of the next PDU that came in the same read (they are forwarded too).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The first PDU alone (`frag_length` bytes), once complete.
    pub fn pdu(&self) -> Option<&[u8]> {
        self.need.filter(|n| *n <= self.buf.len()).map(|n| &self.buf[..n])
    }

    /// Reads until the first PDU is complete. Reads never go past `max(frag_length, 4096)` bytes,
    /// and `frag_length` above `max_bytes` is refused after the header, before its body is read.
    pub async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        max_bytes: usize,
    ) -> Result<(), RpcEdgeError> {
        loop {
            let filled = self.buf.len();
            if self.need.is_none() && filled >= HEADER_LEN {
                let head = &self.buf[..HEADER_LEN];
                self.header = CommonHeader::parse(head).ok();
                self.need = Some(pdu_length(head, max_bytes)?);
            }
            let target = self.need.unwrap_or(HEADER_LEN);
            if filled >= target {
                return Ok(());
            }
            if filled == self.buf.capacity() {
                let grown = (filled * 2).clamp(FIRST_READ, target.max(FIRST_READ));
                self.buf.reserve_exact(grown - filled);
            }
            // `read_buf` fills spare capacity without zeroing it first.
            let n = stream
                .read_buf(&mut self.buf)
                .await
                .map_err(RpcEdgeError::ClientIo)?;
            if n == 0 {
                return Err(match filled {
                    0 => RpcEdgeError::ClientClosed,
                    have => RpcEdgeError::Truncated { need: target, have },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::RpcError;

    const EPM: &[u8] = include_bytes!("../../../tests/testdata/rpc/epm_noauth.bin");
    const MDB: &[u8] = include_bytes!("../../../tests/testdata/rpc/emsmdb_spnego_connect.bin");

    async fn read(input: &[u8], max: usize) -> (FirstPdu, Result<(), RpcEdgeError>) {
        let mut f = FirstPdu::new();
        let mut r = input;
        let res = f.read_from(&mut r, max).await;
        (f, res)
    }

    #[tokio::test]
    async fn whole_bind_is_read_and_kept_byte_for_byte() {
        let (f, r) = read(MDB, 65_536).await;
        r.unwrap();
        assert_eq!(f.pdu(), Some(MDB));
        assert_eq!(f.header.unwrap().call_id, 1);
    }

    #[tokio::test]
    async fn bytes_after_the_bind_are_kept_for_the_backend() {
        let mut input = EPM.to_vec();
        input.extend_from_slice(b"next");
        let (f, r) = read(&input, 65_536).await;
        r.unwrap();
        assert_eq!(f.pdu(), Some(EPM));
        assert_eq!(f.bytes(), &input[..]);
    }

    #[tokio::test]
    async fn bind_split_over_many_reads_is_reassembled() {
        let (client, mut server) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            let mut client = client;
            tokio::io::AsyncWriteExt::write_all(&mut client, MDB)
                .await
                .unwrap();
            client
        });
        let mut f = FirstPdu::new();
        f.read_from(&mut server, 65_536).await.unwrap();
        assert_eq!(f.pdu(), Some(MDB));
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn memory_follows_bytes_received_not_the_claimed_length() {
        // A header claiming 60,000 bytes, then 100 bytes of body, then silence.
        let mut head = MDB[..HEADER_LEN].to_vec();
        head[8..10].copy_from_slice(&60_000u16.to_le_bytes());
        head.extend_from_slice(&[0u8; 100]);
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        tokio::io::AsyncWriteExt::write_all(&mut client, &head)
            .await
            .unwrap();
        let mut f = FirstPdu::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            f.read_from(&mut server, 65_536),
        )
        .await;
        assert!(read.is_err(), "still waiting for the body");
        assert_eq!(f.need, Some(60_000));
        assert_eq!(f.received(), 116);
        assert!(f.buf.capacity() <= 2 * FIRST_READ, "{}", f.buf.capacity());
        // As the body arrives, the buffer grows to hold it, and the PDU completes.
        tokio::io::AsyncWriteExt::write_all(&mut client, &vec![0u8; 60_000 - 116])
            .await
            .unwrap();
        f.read_from(&mut server, 65_536).await.unwrap();
        assert_eq!(f.pdu().map(<[u8]>::len), Some(60_000));
    }

    #[tokio::test]
    async fn eof_before_any_byte_is_a_quiet_close() {
        assert!(matches!(
            read(b"", 65_536).await.1,
            Err(RpcEdgeError::ClientClosed)
        ));
    }

    #[tokio::test]
    async fn eof_mid_pdu_is_truncated() {
        let (f, r) = read(&MDB[..100], 65_536).await;
        assert!(matches!(
            r,
            Err(RpcEdgeError::Truncated { need, have: 100 }) if need == MDB.len()
        ));
        assert!(f.header.is_some(), "the header was complete");
    }

    #[tokio::test]
    async fn eof_mid_header_is_truncated_without_a_header() {
        let (f, r) = read(&MDB[..10], 65_536).await;
        assert!(matches!(r, Err(RpcEdgeError::Truncated { need: 16, have: 10 })));
        assert!(f.header.is_none());
    }

    #[tokio::test]
    async fn oversize_frag_length_is_refused_after_the_header() {
        let (f, r) = read(MDB, 512).await;
        assert!(matches!(r, Err(RpcEdgeError::Pdu(RpcError::FragTooLong { .. }))));
        assert_eq!(
            f.header.unwrap().call_id,
            1,
            "header known, so a bind_nak can be sent"
        );
    }

    #[tokio::test]
    async fn garbage_header_is_refused() {
        let (f, r) = read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 65_536).await;
        assert!(matches!(r, Err(RpcEdgeError::Pdu(RpcError::BadVersion { .. }))));
        assert!(f.header.is_none());
    }
}
