//! Guards `tests/data/pac1921.trace`, the register trace `racklet-rmd pac1921`'s tests
//! replay (these machines have no I2C bus): the driver is run against the digital twin's
//! register-level PAC1921 model on a powered Raspberry Pi 4 tray, every transaction is
//! written down, and the result must be the committed trace. When the driver's register
//! access changes on purpose, `RACKLET_BLESS=1 cargo test -p racklet-rmd-daemon --test
//! pac1921_trace` rewrites it.

// reason: tests may expect: a panic is their failure report.
#![allow(clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use embedded_hal::digital::OutputPin;
use embedded_hal::i2c::{I2c, Operation};
use racklet_pac1921::Pac1921;

struct Recording<I> {
    inner: I,
    trace: String,
}

impl<I: I2c> embedded_hal::i2c::ErrorType for Recording<I> {
    type Error = I::Error;
}

impl<I: I2c> I2c for Recording<I> {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), I::Error> {
        self.inner.transaction(address, operations)?;
        let hex = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let line = match operations {
            [Operation::Write(w)] => format!("w {address:02x} {}", hex(w)),
            [Operation::Write(w), Operation::Read(r)] => {
                format!("wr {address:02x} {} -> {}", hex(w), hex(r))
            }
            _ => panic!("the driver used a transaction shape the trace format does not hold"),
        };
        let _ = writeln!(self.trace, "{line}");
        Ok(())
    }
}

#[test]
fn the_committed_pac1921_trace_is_what_the_driver_and_the_twins_model_exchange() {
    let bmc_less =
        racklet_twin::Twin::new(&common::example_set(), &racklet_twin::TwinConfig::default())
            .expect("twin");
    bmc_less.advance(Duration::from_millis(1));
    let mut p = bmc_less
        .tray_peripherals(common::CHASSIS, 1)
        .expect("tray 1");
    p.dcdc_enable.set_high().expect("DCDC_EN");
    bmc_less.advance(Duration::from_secs(60)); // booted and idle
    let mut rec = Recording {
        inner: p.i2c,
        trace: String::new(),
    };
    {
        let mut pac = Pac1921::new(&mut rec, 0x4c, 0x0a, 0.010);
        pac.init().expect("init");
        for _ in 0..2 {
            bmc_less.advance(Duration::from_millis(500));
            pac.finish_window().expect("window");
        }
    }
    let header = "# PAC1921 register trace: racklet-pac1921 against the digital twin's register model\n\
                  # (tray 1 of the example rack, a Raspberry Pi 4 idle at 5.1 V), two 500 ms windows.\n\
                  # Recorded by tests/pac1921_trace.rs; `w ADDR BYTES` is a write, `wr ADDR BYTES -> REPLY` a write-read.\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pac1921.trace");
    let recorded = format!("{header}{}", rec.trace);
    if std::env::var_os("RACKLET_BLESS").is_some() {
        std::fs::write(&path, recorded).expect("write the trace");
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("the committed trace");
    assert_eq!(
        committed, recorded,
        "the driver's register access or the twin's model changed; if on purpose, RACKLET_BLESS=1 rewrites the trace"
    );
}
