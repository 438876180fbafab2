//! `racklet-rmd pac1921`: reads a PAC1921 power monitor wired to this board's I2C bus
//! (`/dev/i2c-N`) with the very driver the BMC firmware runs (`racklet-pac1921`), through
//! `linux-embedded-hal`. For bringing up a BMC HAT on an SBC, or reading a PAC1921 that an
//! RMC has on its own rail.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use embedded_hal::i2c::I2c;
use racklet_pac1921::{Error, Pac1921, Reading};

/// Reads a PAC1921 on a Linux I2C bus.
#[derive(clap::Args, Debug)]
pub struct Pac1921Args {
    /// The I2C bus device.
    #[arg(long, default_value = "/dev/i2c-1")]
    bus: PathBuf,
    /// The chip's 7-bit address (hex).
    #[arg(long, default_value = "4c", value_parser = parse_hex_u8)]
    address: u8,
    /// The shunt resistor, ohms.
    #[arg(long, default_value_t = 0.010)]
    shunt_ohms: f64,
    /// The gain register (hex): bits 5:3 current gain, 2:0 bus-voltage gain. The default
    /// suits a 5.1 V rail up to 5 A through 10 mΩ, as on the Racklet BMC HAT.
    #[arg(long, default_value = "0a", value_parser = parse_hex_u8)]
    gain: u8,
    /// Length of each integration window, milliseconds.
    #[arg(long, default_value_t = 500)]
    window_ms: u64,
    /// Windows to read (0: until interrupted).
    #[arg(long, default_value_t = 5)]
    count: u32,
}

fn parse_hex_u8(s: &str) -> Result<u8, String> {
    u8::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|e| format!("{s:?} is not a hex byte: {e}"))
}

pub fn run(args: &Pac1921Args) -> anyhow::Result<()> {
    let i2c = linux_embedded_hal::I2cdev::new(&args.bus).with_context(|| {
        format!(
            "cannot open {}; is the bus enabled (dtparam=i2c_arm=on) and may this user use it (group i2c)?",
            args.bus.display()
        )
    })?;
    let window = Duration::from_millis(args.window_ms);
    println!("window_s\tvolts\tamps\twatts\toverflow");
    measure(
        &mut Pac1921::new(i2c, args.address, args.gain, args.shunt_ohms),
        args.count,
        || std::thread::sleep(window),
        |r| {
            println!(
                "{:.3}\t{:.3}\t{:.4}\t{:.3}\t{:#04x}",
                window.as_secs_f64(),
                r.volts,
                r.amps,
                r.watts,
                r.overflow
            );
        },
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "PAC1921 at {:#04x} on {}: {e:?}",
            args.address,
            args.bus.display()
        )
    })
}

/// Starts the chip, then reads `count` windows (0: forever), calling `wait` for each
/// window's length and `out` with its reading.
pub fn measure<I: I2c>(
    pac: &mut Pac1921<I>,
    count: u32,
    mut wait: impl FnMut(),
    mut out: impl FnMut(&Reading),
) -> Result<(), Error<I::Error>> {
    pac.init()?;
    let mut done = 0;
    while count == 0 || done < count {
        wait();
        out(&pac.finish_window()?);
        done += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use embedded_hal::i2c::{ErrorKind, ErrorType, Operation};

    use super::*;

    /// One I2C transaction of the recorded trace.
    #[derive(Debug, PartialEq)]
    enum Op {
        Write(Vec<u8>),
        WriteRead(Vec<u8>, Vec<u8>),
    }

    /// An I2C bus that replays `tests/data/pac1921.trace` and fails on any difference.
    struct Replay {
        address: u8,
        ops: VecDeque<Op>,
    }

    impl Replay {
        fn load(text: &str) -> Replay {
            let byte = |s: &str| u8::from_str_radix(s, 16).unwrap_or_else(|e| panic!("{s}: {e}"));
            let mut address = 0;
            let mut ops = VecDeque::new();
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let (head, reply) = line
                    .split_once("->")
                    .map_or((line, None), |(h, r)| (h, Some(r)));
                let mut words = head.split_whitespace();
                let kind = words.next().unwrap_or_default();
                address = byte(words.next().unwrap_or_default());
                let sent: Vec<u8> = words.map(byte).collect();
                ops.push_back(match (kind, reply) {
                    ("w", None) => Op::Write(sent),
                    ("wr", Some(r)) => {
                        Op::WriteRead(sent, r.split_whitespace().map(byte).collect())
                    }
                    _ => panic!("bad trace line {line:?}"),
                });
            }
            Replay { address, ops }
        }
    }

    impl ErrorType for Replay {
        type Error = ErrorKind;
    }

    impl I2c for Replay {
        fn transaction(
            &mut self,
            address: u8,
            operations: &mut [Operation<'_>],
        ) -> Result<(), ErrorKind> {
            assert_eq!(address, self.address, "the driver addressed another chip");
            let got = match operations {
                [Operation::Write(w)] => Op::Write(w.to_vec()),
                [Operation::Write(w), Operation::Read(r)] => {
                    let Some(Op::WriteRead(sent, reply)) = self.ops.front() else {
                        panic!(
                            "the driver read {w:02x?} where the trace has {:?}",
                            self.ops.front()
                        );
                    };
                    assert_eq!(
                        sent.as_slice(),
                        *w,
                        "register pointer differs from the trace"
                    );
                    assert_eq!(reply.len(), r.len(), "read length differs from the trace");
                    r.copy_from_slice(reply);
                    Op::WriteRead(w.to_vec(), reply.clone())
                }
                other => panic!(
                    "a transaction the trace cannot hold: {} operations",
                    other.len()
                ),
            };
            let want = self.ops.pop_front();
            assert_eq!(
                Some(&got),
                want.as_ref(),
                "the driver's transaction differs from the trace"
            );
            Ok(())
        }
    }

    #[test]
    fn the_driver_reads_the_recorded_pac1921_trace_as_the_trays_watts() {
        let trace = include_str!("../tests/data/pac1921.trace");
        let replay = Replay::load(trace);
        let mut readings = Vec::new();
        let mut pac = Pac1921::new(replay, 0x4c, 0x0a, 0.010);
        measure(&mut pac, 2, || {}, |r| readings.push(*r)).expect("the trace is a PAC1921");
        assert!(
            pac.release().ops.is_empty(),
            "the driver read the whole trace"
        );
        assert_eq!(readings.len(), 2);
        for r in &readings {
            assert!((r.volts - 5.1).abs() < 0.05, "{r:?}");
            assert!((r.watts - 3.1).abs() < 0.1, "{r:?}");
            assert_eq!(r.overflow, 0);
        }
    }

    #[test]
    fn a_chip_with_other_ids_is_refused() {
        let trace = "wr 4c fd -> 40\nwr 4c fe -> 5d\n";
        let mut pac = Pac1921::new(Replay::load(trace), 0x4c, 0x0a, 0.010);
        let e = measure(&mut pac, 1, || {}, |_| {}).expect_err("not a PAC1921");
        assert!(
            matches!(e, Error::NotPac1921 { product: 0x40, .. }),
            "{e:?}"
        );
    }
}
