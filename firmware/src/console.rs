//! The compute unit's serial console as the BMC core wants it: blocking `embedded-io`
//! reads and writes with a non-blocking `ReadReady` (embassy's buffered UART has that only
//! in its async form).

use embassy_rp::uart::{BufferedUart, Error};

/// A buffered UART (interrupt-driven ring buffers, so bytes are not lost while the core is
/// busy signing or verifying).
pub struct Console(pub BufferedUart);

impl embedded_io::ErrorType for Console {
    type Error = Error;
}

impl embedded_io::Read for Console {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        embedded_io::Read::read(&mut self.0, buf)
    }
}

impl embedded_io::ReadReady for Console {
    fn read_ready(&mut self) -> Result<bool, Error> {
        embedded_io_async::ReadReady::read_ready(&mut self.0)
    }
}

impl embedded_io::Write for Console {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        embedded_io::Write::write(&mut self.0, buf)
    }

    fn flush(&mut self) -> Result<(), Error> {
        embedded_io::Write::flush(&mut self.0)
    }
}
