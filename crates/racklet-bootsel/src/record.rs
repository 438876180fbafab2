//! The key store's record in flash: two sectors written alternately, each holding
//! `magic, sequence, length, SHA-256(payload), payload`. The newest whole record wins, so
//! a reset in the middle of a write (a torn or erased sector) leaves the previous one.

use sha2::{Digest, Sha256};

use crate::layout::SECTOR_BYTES;

/// Bytes of one sector, as a buffer length.
pub const SECTOR: usize = SECTOR_BYTES as usize;
/// "RCKS".
pub const MAGIC: u32 = 0x5243_4B53;
/// Magic, sequence, payload length, SHA-256.
pub const HEADER_BYTES: usize = 4 + 4 + 2 + 32;

/// A whole record found in a sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub sequence: u32,
    /// Payload bytes, which start at [`HEADER_BYTES`].
    pub len: usize,
}

impl Record {
    /// The payload of this record in `sector`.
    pub fn payload<'a>(&self, sector: &'a [u8]) -> Option<&'a [u8]> {
        sector.get(HEADER_BYTES..HEADER_BYTES + self.len)
    }
}

/// The record in `sector`, if it is whole (magic, length and digest all hold).
pub fn parse(sector: &[u8]) -> Option<Record> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(sector.get(at..at + 4)?.try_into().ok()?))
    };
    if word(0)? != MAGIC {
        return None;
    }
    let sequence = word(4)?;
    let len = usize::from(u16::from_le_bytes(sector.get(8..10)?.try_into().ok()?));
    let digest = sector.get(10..HEADER_BYTES)?;
    let payload = sector.get(HEADER_BYTES..HEADER_BYTES + len)?;
    (Sha256::digest(payload).as_slice() == digest).then_some(Record { sequence, len })
}

/// The payload does not fit a sector's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// Builds the record for `payload` with `sequence` into `out` (the rest stays as it is,
/// erased flash being 0xFF); the record's length in bytes.
pub fn build(sequence: u32, payload: &[u8], out: &mut [u8; SECTOR]) -> Result<usize, TooLarge> {
    let len = u16::try_from(payload.len()).map_err(|_| TooLarge)?;
    let end = HEADER_BYTES + payload.len();
    if end > SECTOR {
        return Err(TooLarge);
    }
    out[..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&sequence.to_le_bytes());
    out[8..10].copy_from_slice(&len.to_le_bytes());
    out[10..HEADER_BYTES].copy_from_slice(&Sha256::digest(payload));
    out[HEADER_BYTES..end].copy_from_slice(payload);
    Ok(end)
}

/// The newest whole record of the two sectors: (sector index, record). Sequence numbers
/// wrap, so "newer" is "ahead by less than half the range".
pub fn newest(sectors: [&[u8]; 2]) -> Option<(usize, Record)> {
    let a = parse(sectors[0]).map(|r| (0, r));
    let b = parse(sectors[1]).map(|r| (1, r));
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.1.sequence.wrapping_sub(a.1.sequence) as i32 > 0 {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Where the next record goes and its sequence: the sector the newest is not in.
pub fn next(newest: Option<(usize, u32)>) -> (usize, u32) {
    match newest {
        Some((index, sequence)) => (index ^ 1, sequence.wrapping_add(1)),
        None => (0, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sector_with(sequence: u32, payload: &[u8]) -> [u8; SECTOR] {
        let mut s = [0xFF; SECTOR];
        build(sequence, payload, &mut s).expect("fits");
        s
    }

    #[test]
    fn a_record_reads_back_its_payload_and_sequence() {
        let s = sector_with(7, b"keys");
        let r = parse(&s).expect("whole");
        assert_eq!((r.sequence, r.payload(&s)), (7, Some(&b"keys"[..])));
    }

    #[test]
    fn a_torn_or_erased_sector_is_not_a_record() {
        let mut s = sector_with(7, b"keys");
        s[HEADER_BYTES + 1] ^= 1; // the payload's digest no longer holds
        assert_eq!(parse(&s), None);
        assert_eq!(parse(&[0xFF; SECTOR]), None);
        let mut long = sector_with(7, b"keys");
        long[8..10].copy_from_slice(&u16::MAX.to_le_bytes()); // longer than the sector
        assert_eq!(parse(&long), None);
    }

    #[test]
    fn the_newer_sequence_wins_also_across_the_wrap() {
        let old = sector_with(u32::MAX, b"old");
        let new = sector_with(0, b"new");
        assert_eq!(newest([&old, &new]).map(|(i, _)| i), Some(1));
        assert_eq!(newest([&new, &old]).map(|(i, _)| i), Some(0));
        // One sector torn mid-write: the other is still read.
        assert_eq!(newest([&[0xFF; SECTOR], &old]).map(|(i, _)| i), Some(1));
    }

    #[test]
    fn the_next_record_goes_to_the_other_sector_with_the_next_sequence() {
        assert_eq!(next(None), (0, 1));
        assert_eq!(next(Some((0, 5))), (1, 6));
        assert_eq!(next(Some((1, u32::MAX))), (0, 0));
    }

    #[test]
    fn a_payload_larger_than_a_sector_is_refused() {
        let mut s = [0xFF; SECTOR];
        assert_eq!(build(1, &[0; SECTOR], &mut s), Err(TooLarge));
    }
}
