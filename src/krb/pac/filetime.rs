//! FILETIME (MS-DTYP 2.3.3): 100-nanosecond intervals since 1601-01-01 UTC.

/// Seconds from 1601-01-01 to 1970-01-01.
const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
/// FILETIME ticks per second.
const TICKS_PER_SEC: u64 = 10_000_000;

/// A FILETIME (MS-DTYP 2.3.3) as the PAC carries it. MS-PAC 2.5 uses 0 for "not set" and
/// 0x7FFFFFFF_FFFFFFFF for "never".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileTime(pub u64);

impl FileTime {
    /// "Never" (MS-PAC 2.5, e.g. `LogoffTime` and `KickOffTime` of an account without limits).
    pub const NEVER: FileTime = FileTime(0x7fff_ffff_ffff_ffff);

    /// The FILETIME of a Unix time in seconds, clamped to the representable range.
    pub fn from_unix(secs: i64) -> Self {
        let since_1601 = secs.saturating_add(EPOCH_DIFF_SECS).max(0) as u64;
        FileTime(since_1601.saturating_mul(TICKS_PER_SEC))
    }

    /// Whole Unix seconds (rounded down), as MIT `krb5_pac_get_client_info` computes them.
    /// Cannot overflow: u64::MAX ticks is about 1.8e12 seconds.
    pub fn to_unix(self) -> i64 {
        (self.0 / TICKS_PER_SEC) as i64 - EPOCH_DIFF_SECS
    }

    /// Whether this is MS-PAC's "never" value.
    pub fn is_never(self) -> bool {
        self == Self::NEVER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_is_the_documented_filetime() {
        assert_eq!(FileTime::from_unix(0), FileTime(116_444_736_000_000_000));
        assert_eq!(FileTime(116_444_736_000_000_000).to_unix(), 0);
    }

    #[test]
    fn extreme_filetimes_do_not_overflow() {
        assert_eq!(FileTime(0).to_unix(), -EPOCH_DIFF_SECS);
        assert!(FileTime(u64::MAX).to_unix() > 0);
        assert_eq!(FileTime::from_unix(i64::MIN), FileTime(0));
        assert_eq!(FileTime::from_unix(i64::MAX), FileTime(u64::MAX));
    }

    #[test]
    fn unix_seconds_round_trip() {
        for t in [1_120_440_609, 1_538_430_362, 4_102_444_800] {
            assert_eq!(FileTime::from_unix(t).to_unix(), t);
        }
    }
}
