//! The compute unit's console, bridged: bytes from its UART go into a history ring with
//! sequence numbers, so any reader can resume where it left off.

use heapless::Deque;

/// Bytes of console history the BMC keeps.
pub const HISTORY: usize = 4096;

/// A ring of the last [`HISTORY`] console bytes; byte `n` of the stream has sequence `n`.
#[derive(Debug, Default)]
pub struct ConsoleHistory {
    ring: Deque<u8, HISTORY>,
    /// Sequence number of the next byte to arrive.
    next: u64,
}

impl ConsoleHistory {
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.ring.is_full() {
                self.ring.pop_front();
            }
            let _ = self.ring.push_back(b);
            self.next += 1;
        }
    }

    /// Sequence number of the oldest byte still held.
    pub fn oldest(&self) -> u64 {
        self.next - self.ring.len() as u64
    }

    pub fn next(&self) -> u64 {
        self.next
    }

    /// Copies bytes from sequence `from` (or the oldest held) into `out`; returns the
    /// sequence of the first byte copied and how many were copied.
    pub fn read(&self, from: u64, out: &mut [u8]) -> (u64, usize) {
        let start = from.clamp(self.oldest(), self.next);
        let skip = usize::try_from(start - self.oldest()).unwrap_or(usize::MAX);
        let mut n = 0;
        for (o, b) in out.iter_mut().zip(self.ring.iter().skip(skip)) {
            *o = *b;
            n += 1;
        }
        (start, n)
    }
}
