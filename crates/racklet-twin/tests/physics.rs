//! Physics of the digital twin: energy, heat, rails, fans, hot-swap, faults — each checked
//! against the analytic answer or the hardware's documented behaviour.

// reason: tests may expect, helpers included: a panic is their failure report; their
// sizes and readings are small and known.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::Path;
use std::time::Duration;

use embedded_hal::digital::OutputPin;
use embedded_hal::pwm::SetDutyCycle;
use embedded_io::{Read, ReadReady, Write};
use racklet_hal::{PortState, SensorError, Tachometer, TemperatureSensor, UsbHub};
use racklet_model::chassis::Rail;
use racklet_model::ManifestSet;
use racklet_pac1921::{Pac1921, DEFAULT_ADDRESS};
use racklet_twin::{Fault, OsState, SensorFault, Twin, TwinConfig};

const CH: &str = "chassis-1";
/// DI gain 4 (2.5 A full scale on 10 mΩ), DV gain 4 (8 V full scale).
const GAIN_5V: u8 = (2 << 3) | 2;

fn example_twin(step: Duration, seed: u64) -> Twin {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let (set, diags) = ManifestSet::load(&[dir]);
    assert!(diags.is_empty(), "{diags:?}");
    Twin::new(
        &set,
        &TwinConfig {
            seed,
            ambient_celsius: 25.0,
            step,
        },
    )
    .expect("twin builds")
}

fn power_on(twin: &Twin, slot: u32) {
    let mut p = twin.tray_peripherals(CH, slot).expect("tray exists");
    p.dcdc_enable.set_high().ok();
}

fn fans(twin: &Twin, percent: u8) {
    for fan in ["fan-left", "fan-right"] {
        let (mut pwm, _) = twin.fan(CH, fan).expect("fan exists");
        pwm.set_duty_cycle_percent(percent).ok();
    }
}

fn tray<R>(twin: &Twin, slot: u32, f: impl FnOnce(&racklet_twin::TrayTwin) -> R) -> R {
    let s = twin.lock();
    f(s.chassis[0].tray(slot).expect("tray exists"))
}

#[test]
fn energy_equals_integral_of_power_within_pac1921_resolution() {
    let twin = example_twin(Duration::from_millis(1), 1);
    let p = twin.tray_peripherals(CH, 1).expect("tray");
    let mut dcdc = p.dcdc_enable;
    let mut pac = Pac1921::new(p.i2c, DEFAULT_ADDRESS, GAIN_5V, p.shunt_ohms);
    pac.init().expect("PAC1921 answers");
    dcdc.set_high().ok();
    fans(&twin, 50);
    let window = Duration::from_millis(500);
    let mut measured = racklet_pac1921::EnergyAccumulator::default();
    for i in 0..240u32 {
        // Boot, then a changing workload.
        twin.set_load(CH, 1, f64::from(i % 7) / 6.0).expect("tray");
        twin.advance(window);
        let r = pac.finish_window().expect("reading");
        assert_eq!(r.overflow, 0, "no overflow at these gains");
        measured.add(r.watts, window.as_secs_f64());
    }
    let exact = tray(&twin, 1, |t| t.energy_joules);
    let lsb = pac.scale().watts_lsb();
    // Each window's average is rounded to the nearest LSB: at most half an LSB × window.
    let bound = 0.5 * lsb * measured.seconds;
    assert!(exact > 500.0, "the tray used energy: {exact} J");
    assert!(
        (measured.joules - exact).abs() <= bound,
        "measured {} J, exact {exact} J, bound ±{bound} J",
        measured.joules
    );
}

#[test]
fn temperature_converges_to_the_analytic_steady_state() {
    let twin = example_twin(Duration::from_millis(10), 1);
    power_on(&twin, 1);
    fans(&twin, 50);
    twin.set_load(CH, 1, 1.0).expect("tray");
    twin.advance(Duration::from_secs(1500));
    let s = twin.lock();
    let c = &s.chassis[0];
    let t = c.tray(1).expect("tray");
    let airflow = c.airflow(0);
    let steady = t.steady_state_celsius(airflow, 25.0).expect("installed");
    // rpi4b at full load (6.4 W), R between still air (10) and forced air (3.5) °C/W.
    let r = 10.0 - (10.0 - 3.5) * airflow;
    assert!((steady - (25.0 + 6.4 * r)).abs() < 1e-9);
    assert!(
        (t.soc_celsius - steady).abs() < 0.05,
        "T = {} °C, analytic {steady} °C",
        t.soc_celsius
    );
    assert!(!t.throttled);
}

#[test]
fn rail_trips_at_its_limit_and_latches_until_the_psu_is_reset() {
    let twin = example_twin(Duration::from_millis(1), 1);
    power_on(&twin, 4); // rpi5
    twin.advance(Duration::from_secs(20)); // booted
    twin.set_load(CH, 4, 0.5).expect("tray");
    twin.advance(Duration::from_millis(10));
    let at_half = twin.lock().chassis[0].rail(Rail::P12V).amps;
    twin.set_load(CH, 4, 0.6).expect("tray");
    twin.advance(Duration::from_millis(10));
    let at_six_tenths = twin.lock().chassis[0].rail(Rail::P12V).amps;
    assert!(at_six_tenths > at_half);
    // A PSU whose over-current protection sits between the two draws.
    let limit = (at_half + at_six_tenths) / 2.0;
    twin.lock().chassis[0].rail_mut(Rail::P12V).limit_amps = limit;
    twin.set_load(CH, 4, 0.5).expect("tray");
    twin.advance(Duration::from_secs(1));
    assert!(
        !twin.lock().chassis[0].rail(Rail::P12V).tripped,
        "below the limit it holds"
    );
    twin.set_load(CH, 4, 0.6).expect("tray");
    twin.advance(Duration::from_millis(5));
    {
        let s = twin.lock();
        let rail = s.chassis[0].rail(Rail::P12V);
        assert!(rail.tripped, "above the limit ({limit} A) it trips");
        assert_eq!(rail.amps, 0.0);
    }
    assert_eq!(tray(&twin, 4, |t| t.os), OsState::Off);
    twin.set_load(CH, 4, 0.0).expect("tray");
    twin.advance(Duration::from_secs(2));
    assert!(
        twin.lock().chassis[0].rail(Rail::P12V).tripped,
        "the trip latches"
    );
    // With DCDC_EN still high the reset would boot the tray into its in-rush (2.5 A at
    // 5 V), far above this weak limit: it trips again at once.
    twin.reset_psu(CH).expect("chassis");
    twin.advance(Duration::from_millis(5));
    assert!(
        twin.lock().chassis[0].rail(Rail::P12V).tripped,
        "in-rush trips the weak PSU again"
    );
    let mut dcdc = twin.tray_peripherals(CH, 4).expect("tray").dcdc_enable;
    dcdc.set_low().ok();
    twin.reset_psu(CH).expect("chassis");
    twin.advance(Duration::from_millis(5));
    assert!(
        !twin.lock().chassis[0].rail(Rail::P12V).tripped,
        "reset clears the latch"
    );
    assert_eq!(tray(&twin, 4, |t| t.os), OsState::Off);
}

#[test]
fn failed_fan_makes_temperatures_rise_in_its_zone_only() {
    let twin = example_twin(Duration::from_millis(10), 1);
    for slot in 1..=7 {
        power_on(&twin, slot);
        twin.set_load(CH, slot, 1.0).expect("tray");
    }
    fans(&twin, 60);
    twin.advance(Duration::from_secs(900));
    let before: Vec<f64> = (1..=7).map(|s| tray(&twin, s, |t| t.soc_celsius)).collect();
    twin.inject(Fault::FanFailed {
        chassis: CH.into(),
        fan: "fan-left".into(),
    })
    .expect("fan");
    twin.advance(Duration::from_secs(900));
    let after: Vec<f64> = (1..=7).map(|s| tray(&twin, s, |t| t.soc_celsius)).collect();
    for slot in 1..=4usize {
        assert!(
            after[slot - 1] > before[slot - 1] + 5.0,
            "tray {slot}: {} -> {}",
            before[slot - 1],
            after[slot - 1]
        );
    }
    for slot in 5..=7usize {
        assert!(
            (after[slot - 1] - before[slot - 1]).abs() < 0.5,
            "tray {slot} is in the other zone"
        );
    }
    let (_, mut tach) = twin.fan(CH, "fan-left").expect("fan");
    assert_eq!(tach.rpm(), Ok(0), "a failed fan reads 0 RPM");
}

#[test]
fn pulled_tray_drops_its_rail_draw_to_zero_and_leaves_the_hub() {
    let twin = example_twin(Duration::from_millis(1), 1);
    for slot in 1..=7 {
        power_on(&twin, slot);
    }
    twin.advance(Duration::from_secs(30));
    let mut hub = twin.usb_hub(CH).expect("hub");
    while hub.next_event().is_some() {}
    let serial = match hub.port(1) {
        PortState::Attached { serial } => serial,
        PortState::Empty => panic!("tray 1's BMC is on the hub"),
    };
    let (rail_before, tray_watts) = {
        let s = twin.lock();
        (
            s.chassis[0].rail(Rail::P12V).amps,
            s.chassis[0].tray(1).expect("tray").board_watts,
        )
    };
    assert!(tray_watts > 1.0);
    twin.inject(Fault::TrayPulled {
        chassis: CH.into(),
        slot: 1,
    })
    .expect("tray");
    twin.advance(Duration::from_millis(1));
    let s = twin.lock();
    let t = s.chassis[0].tray(1).expect("slot");
    assert_eq!(t.board_watts, 0.0);
    assert_eq!(t.os, OsState::Off);
    let rail_after = s.chassis[0].rail(Rail::P12V).amps;
    let expected = rail_before - tray_watts / 0.9 / 12.0;
    assert!(
        (rail_after - expected).abs() < 1e-6,
        "rail {rail_before} -> {rail_after}, expected {expected}"
    );
    drop(s);
    let ev = hub.next_event().expect("detach event");
    assert_eq!((ev.port, ev.state), (1, PortState::Empty));
    twin.inject(Fault::TrayInserted {
        chassis: CH.into(),
        slot: 1,
        board: "rpi4b".into(),
        hostname: "node-1".into(),
        bmc_serial: None,
    })
    .expect("slot is free");
    twin.advance(Duration::from_millis(1));
    let ev = hub.next_event().expect("attach event");
    assert_eq!((ev.port, ev.state), (1, PortState::Attached { serial }));
    assert_eq!(
        tray(&twin, 1, |t| t.os),
        OsState::Off,
        "a fresh BMC keeps DCDC_EN low"
    );
}

#[test]
fn power_on_shows_inrush_then_boot_draw() {
    let twin = example_twin(Duration::from_millis(1), 1);
    power_on(&twin, 1);
    twin.advance(Duration::from_millis(1));
    let w = tray(&twin, 1, |t| t.board_watts);
    assert!(
        (w - 1.7 * 5.1).abs() < 1e-9,
        "in-rush 1.7 A at 5.1 V, got {w} W"
    );
    twin.advance(Duration::from_millis(20));
    let w = tray(&twin, 1, |t| t.board_watts);
    assert!((w - 3.6).abs() < 1e-9, "booting draw 3.6 W, got {w} W");
}

#[test]
fn fanless_board_throttles_and_stays_below_its_limit() {
    let twin = example_twin(Duration::from_millis(10), 1);
    power_on(&twin, 4); // rpi5: 25 + 9.7 W × 7 °C/W would be 93 °C unthrottled
    twin.set_load(CH, 4, 1.0).expect("tray");
    fans(&twin, 0);
    twin.advance(Duration::from_secs(1500));
    let (celsius, watts, throttled) =
        tray(&twin, 4, |t| (t.soc_celsius, t.board_watts, t.throttled));
    assert!(throttled);
    assert!(celsius > 80.0 && celsius < 85.0, "{celsius} °C");
    assert!(watts < 9.7, "{watts} W");
}

#[test]
fn same_seed_gives_the_same_sensor_trace() {
    let trace = |seed: u64| {
        let twin = example_twin(Duration::from_millis(1), seed);
        power_on(&twin, 1);
        fans(&twin, 70);
        let mut sensor = twin.tray_peripherals(CH, 1).expect("tray").soc_temperature;
        let (_, mut tach) = twin.fan(CH, "fan-left").expect("fan");
        (0..50)
            .map(|_| {
                twin.advance(Duration::from_millis(100));
                (sensor.read_millicelsius(), tach.rpm())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(trace(7), trace(7));
    assert_ne!(trace(7), trace(8));
}

#[test]
fn console_shows_boot_and_poweroff_halts_the_os() {
    let twin = example_twin(Duration::from_millis(1), 1);
    let mut p = twin.tray_peripherals(CH, 1).expect("tray");
    p.dcdc_enable.set_high().ok();
    twin.advance(Duration::from_secs(21));
    let mut buf = [0u8; 4096];
    let n = p.console.read(&mut buf).expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.contains("Booting Linux"), "{text}");
    assert!(text.contains("node-1 login:"), "{text}");
    p.console.write_all(b"poweroff\n").expect("write");
    twin.advance(Duration::from_secs(4));
    let n = p.console.read(&mut buf).expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("Power down"));
    assert_eq!(
        tray(&twin, 1, |t| (t.os, t.board_watts)),
        (OsState::Halted, 0.12)
    );
}

#[test]
fn the_power_button_shuts_the_emulated_os_down() {
    let twin = example_twin(Duration::from_millis(1), 1);
    let mut p = twin.tray_peripherals(CH, 1).expect("tray");
    p.dcdc_enable.set_high().ok();
    twin.advance(Duration::from_secs(21));
    assert_eq!(tray(&twin, 1, |t| t.os), OsState::Running);
    p.power_button.set_high().ok();
    p.power_button.set_low().ok();
    twin.advance(Duration::from_secs(4));
    assert_eq!(
        tray(&twin, 1, |t| (t.os, t.button_presses)),
        (OsState::Halted, 1)
    );
}

#[test]
fn a_machine_tray_carries_its_serial_ports_and_halts_when_its_machine_ends() {
    let twin = example_twin(Duration::from_millis(1), 1);
    let mut p = twin.tray_peripherals(CH, 1).expect("tray");
    let with = |f: &mut dyn FnMut(&mut racklet_twin::TrayTwin)| {
        f(twin.lock().tray_mut(CH, 1).expect("tray"));
    };
    with(&mut |t| t.compute = racklet_twin::Compute::Machine);
    p.dcdc_enable.set_high().ok();
    twin.advance(Duration::from_secs(30));
    // No scripted boot: the machine's driver says when it runs.
    assert_eq!(tray(&twin, 1, |t| t.os), OsState::Booting);
    assert!(!p.console.read_ready().expect("ready"));
    with(&mut |t| {
        t.machine_running(true, 30.0);
        t.machine_console(b"[    0.000000] Linux version 6.1\r\n");
        t.boot_to_bmc.extend(b"frame");
    });
    let mut buf = [0u8; 256];
    let n = p.console.read(&mut buf).expect("read");
    assert_eq!(&buf[..n], b"[    0.000000] Linux version 6.1\r\n");
    p.console.write_all(b"typed\n").expect("write");
    assert_eq!(
        tray(&twin, 1, |t| t
            .console_to_machine
            .iter()
            .copied()
            .collect::<Vec<u8>>()),
        b"typed\n"
    );
    // The load the driver measured sets the draw.
    with(&mut |t| t.load = 1.0);
    twin.advance(Duration::from_secs(1));
    let busy = tray(&twin, 1, |t| t.board_watts);
    with(&mut |t| t.load = 0.0);
    twin.advance(Duration::from_secs(1));
    assert!(tray(&twin, 1, |t| t.board_watts) < busy);
    // The machine powered itself off: halted, drawing what a halted board draws.
    with(&mut |t| t.machine_running(false, 32.0));
    twin.advance(Duration::from_millis(100));
    assert_eq!(
        tray(&twin, 1, |t| (t.os, t.board_watts)),
        (OsState::Halted, 0.12)
    );
    // Power off: the wires are cut, a new power-on is counted.
    let ons = tray(&twin, 1, |t| t.power_ons);
    p.dcdc_enable.set_low().ok();
    twin.advance(Duration::from_millis(100));
    assert!(tray(&twin, 1, |t| t.boot_to_bmc.is_empty()
        && t.os == OsState::Off));
    p.dcdc_enable.set_high().ok();
    twin.advance(Duration::from_millis(100));
    assert_eq!(tray(&twin, 1, |t| t.power_ons), ons + 1);
}

#[test]
fn brownout_drops_powered_trays_which_then_reboot() {
    let twin = example_twin(Duration::from_millis(1), 1);
    power_on(&twin, 1);
    twin.advance(Duration::from_secs(25));
    assert_eq!(tray(&twin, 1, |t| t.os), OsState::Running);
    twin.inject(Fault::Brownout {
        chassis: CH.into(),
        rail: Rail::P12V,
        volts: 9.0,
        duration: Duration::from_millis(100),
    })
    .expect("chassis");
    twin.advance(Duration::from_millis(50));
    assert_eq!(tray(&twin, 1, |t| t.os), OsState::Off);
    twin.advance(Duration::from_millis(100));
    assert_eq!(tray(&twin, 1, |t| t.os), OsState::Booting);
}

#[test]
fn silent_and_stuck_sensors_are_named_states() {
    let twin = example_twin(Duration::from_millis(1), 1);
    power_on(&twin, 1);
    twin.set_load(CH, 1, 1.0).expect("tray");
    let p = twin.tray_peripherals(CH, 1).expect("tray");
    let mut sensor = p.soc_temperature;
    twin.advance(Duration::from_secs(30));
    twin.inject(Fault::TemperatureSensor {
        chassis: CH.into(),
        slot: 1,
        state: SensorFault::Stuck,
    })
    .expect("tray");
    let stuck = sensor.read_millicelsius().expect("answers");
    twin.advance(Duration::from_secs(60));
    assert_eq!(
        sensor.read_millicelsius(),
        Ok(stuck),
        "a stuck sensor repeats itself"
    );
    assert!(
        tray(&twin, 1, |t| t.soc_celsius) * 1000.0 > f64::from(stuck) + 1000.0,
        "while the SoC warms"
    );
    twin.inject(Fault::TemperatureSensor {
        chassis: CH.into(),
        slot: 1,
        state: SensorFault::Silent,
    })
    .expect("tray");
    assert_eq!(sensor.read_millicelsius(), Err(SensorError::Absent));
    twin.inject(Fault::PowerMonitor {
        chassis: CH.into(),
        slot: 1,
        state: SensorFault::Silent,
    })
    .expect("tray");
    assert!(matches!(
        Pac1921::new(p.i2c, DEFAULT_ADDRESS, GAIN_5V, p.shunt_ohms).init(),
        Err(racklet_pac1921::Error::Bus(_))
    ));
}

#[test]
fn pac1921_saturates_and_flags_overflow_when_gain_is_too_high() {
    let twin = example_twin(Duration::from_millis(1), 1);
    let p = twin.tray_peripherals(CH, 1).expect("tray");
    let mut dcdc = p.dcdc_enable;
    // DI gain 128: 78 mA full scale, far below a Pi's draw.
    let mut pac = Pac1921::new(p.i2c, DEFAULT_ADDRESS, (7 << 3) | 2, p.shunt_ohms);
    pac.init().expect("PAC1921");
    dcdc.set_high().ok();
    twin.advance(Duration::from_secs(1));
    let r = pac.finish_window().expect("reading");
    use racklet_pac1921::overflow::{VPOWER, VSENSE};
    assert_eq!(r.overflow & (VSENSE | VPOWER), VSENSE | VPOWER);
    assert!(
        (r.amps - pac.scale().current_fsr).abs() < 1e-12,
        "saturates at full scale"
    );
}

#[test]
fn pac1921_free_run_updates_once_per_integration_period() {
    use embedded_hal::i2c::I2c;
    use racklet_pac1921::{control, integration, reg, result_code};
    let twin = example_twin(Duration::from_micros(100), 1);
    let mut p = twin.tray_peripherals(CH, 1).expect("tray");
    p.dcdc_enable.set_high().ok();
    let i2c = &mut p.i2c;
    // VPower free-run, 1 sample (2.72 ms at 14-bit with filters), integrating.
    i2c.write(DEFAULT_ADDRESS, &[reg::GAIN_CONFIG, GAIN_5V])
        .expect("ack");
    i2c.write(DEFAULT_ADDRESS, &[reg::CONTROL, 3 << control::MXSL_SHIFT])
        .expect("ack");
    let int = integration::VSENSE_FILTER
        | integration::VBUS_FILTER
        | integration::READ_INT_OVERRIDE
        | integration::INT_EN;
    i2c.write(DEFAULT_ADDRESS, &[reg::INTEGRATION_CONFIG, int])
        .expect("ack");
    let read_power = |i2c: &mut racklet_twin::hal::TwinI2c| {
        let mut b = [0u8; 2];
        i2c.write_read(DEFAULT_ADDRESS, &[reg::VPOWER_RESULT], &mut b)
            .expect("ack");
        result_code(b)
    };
    twin.advance(Duration::from_micros(2_600));
    assert_eq!(read_power(i2c), 0, "no result before the first period ends");
    twin.advance(Duration::from_micros(200));
    let code = read_power(i2c);
    // In-rush 1.7 A × 5.1 V for the whole first period; 20 W full scale.
    let expected = (1.7 * 5.1 / 20.0 * 1023.0f64).round() as u16;
    assert!(
        code.abs_diff(expected) <= 1,
        "code {code}, expected about {expected}"
    );
}

#[test]
fn fan_spins_up_with_a_lag_and_tach_follows() {
    let twin = example_twin(Duration::from_millis(1), 1);
    let (mut pwm, mut tach) = twin.fan(CH, "fan-left").expect("fan");
    pwm.set_duty_cycle_percent(100).ok();
    twin.advance(Duration::from_millis(500));
    let early = tach.rpm().expect("tach");
    twin.advance(Duration::from_secs(8));
    let late = tach.rpm().expect("tach");
    assert!(early > 500 && early < 1500, "{early} RPM after 0.5 s");
    assert!(late > 2900, "{late} RPM after 8.5 s");
    assert_eq!(late % 30, 0, "tach resolves 30 RPM");
}

#[test]
fn another_tray_in_the_slot_brings_another_bmc_serial() {
    let twin = example_twin(Duration::from_millis(1), 1);
    let mut hub = twin.usb_hub(CH).expect("hub");
    twin.advance(Duration::from_millis(1));
    while hub.next_event().is_some() {}
    twin.inject(Fault::TrayPulled {
        chassis: CH.into(),
        slot: 2,
    })
    .expect("tray");
    twin.inject(Fault::TrayInserted {
        chassis: CH.into(),
        slot: 2,
        board: "rpi5".into(),
        hostname: "node-2b".into(),
        bmc_serial: Some(0xB0B),
    })
    .expect("slot is free");
    twin.advance(Duration::from_millis(1));
    assert_eq!(hub.port(2), PortState::Attached { serial: 0xB0B });
    assert!(matches!(
        twin.inject(Fault::TrayInserted {
            chassis: CH.into(),
            slot: 2,
            board: "rpi5".into(),
            hostname: "x".into(),
            bmc_serial: None
        }),
        Err(racklet_twin::TwinError::Occupied { .. })
    ));
}

#[test]
fn running_draw_and_energy_follow_the_board_model() {
    let twin = example_twin(Duration::from_millis(1), 1);
    power_on(&twin, 1);
    fans(&twin, 100);
    twin.advance(Duration::from_secs(25)); // rpi4b boots in 20 s
    twin.set_load(CH, 1, 0.5).expect("tray");
    twin.advance(Duration::from_millis(1));
    let (watts, e0) = tray(&twin, 1, |t| (t.board_watts, t.energy_joules));
    // idle 3.1 W + half of the 3.3 W between idle and full load (6.4 W).
    assert!((watts - 4.75).abs() < 1e-9, "{watts} W");
    twin.advance(Duration::from_secs(10));
    let e1 = tray(&twin, 1, |t| t.energy_joules);
    assert!((e1 - e0 - 47.5).abs() < 1e-6, "{} J in 10 s", e1 - e0);
}

#[test]
fn temperature_after_one_time_constant_is_the_analytic_exponential() {
    let twin = example_twin(Duration::from_millis(10), 1);
    power_on(&twin, 1);
    fans(&twin, 100);
    twin.advance(Duration::from_secs(900)); // booted, idle, settled, fans at speed
    twin.set_load(CH, 1, 1.0).expect("tray");
    twin.advance(Duration::from_millis(10));
    let (t0, steady, tau) = {
        let s = twin.lock();
        let c = &s.chassis[0];
        let t = c.tray(1).expect("tray");
        let thermal = &t.installed.as_ref().expect("board").board.thermal;
        let r = racklet_twin::tray::thermal_resistance(thermal, c.airflow(0));
        (
            t.soc_celsius,
            t.steady_state_celsius(c.airflow(0), 25.0).expect("board"),
            r * thermal.heat_capacity_joules_per_celsius,
        )
    };
    twin.advance(Duration::from_secs_f64(tau));
    let t1 = tray(&twin, 1, |t| t.soc_celsius);
    let expected = steady + (t0 - steady) * (-1.0f64).exp();
    assert!(
        (t1 - expected).abs() < 0.05,
        "T(τ) = {t1} °C, expected {expected} °C (τ = {tau} s)"
    );
}

#[test]
fn inrush_energy_does_not_depend_on_the_step_size() {
    let energy = |step_ms: u64| {
        let twin = example_twin(Duration::from_millis(step_ms), 1);
        power_on(&twin, 1);
        twin.advance(Duration::from_secs(1));
        tray(&twin, 1, |t| t.energy_joules)
    };
    // 5 ms of 1.7 A at 5.1 V, then booting at 3.6 W.
    let expected = 0.005 * 1.7 * 5.1 + 0.995 * 3.6;
    for step in [1, 10, 100] {
        let e = energy(step);
        assert!(
            (e - expected).abs() < 1e-9,
            "{step} ms steps: {e} J, expected {expected} J"
        );
    }
}

#[test]
fn eeprom_writes_need_the_bmc_to_release_write_protect() {
    let twin = example_twin(Duration::from_millis(10), 1);
    let mut p = twin.tray_peripherals(CH, 1).expect("tray");
    p.dcdc_enable.set_high().ok();
    twin.advance(Duration::from_secs(25));
    let mut buf = [0u8; 8192];
    let _ = p.console.read(&mut buf);
    p.console
        .write_all(b"rpi-eeprom-update -a\n")
        .expect("write");
    let n = p.console.read(&mut buf).expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("write-protected"));
    assert_eq!(tray(&twin, 1, |t| t.eeprom_writes), 0);
    p.eeprom_wp.set_low().ok();
    p.console
        .write_all(b"rpi-eeprom-update -a\n")
        .expect("write");
    let n = p.console.read(&mut buf).expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("EEPROM updated"));
    assert_eq!(tray(&twin, 1, |t| t.eeprom_writes), 1);
}

#[test]
fn losing_standby_power_resets_bmcs_to_power_off() {
    let twin = example_twin(Duration::from_millis(1), 1);
    power_on(&twin, 1);
    twin.advance(Duration::from_secs(1));
    let mut hub = twin.usb_hub(CH).expect("hub");
    while hub.next_event().is_some() {}
    twin.inject(Fault::Brownout {
        chassis: CH.into(),
        rail: Rail::P5VSB,
        volts: 3.0,
        duration: Duration::from_millis(50),
    })
    .expect("chassis");
    twin.advance(Duration::from_millis(10));
    assert_eq!(hub.port(1), PortState::Empty, "BMCs drop off the hub");
    twin.advance(Duration::from_secs(1));
    assert!(
        matches!(hub.port(1), PortState::Attached { .. }),
        "and come back"
    );
    let (dcdc, wp, os) = tray(&twin, 1, |t| (t.dcdc_en, t.eeprom_wp, t.os));
    assert!(
        !dcdc && wp,
        "a rebooted BMC starts with DCDC_EN low and WP high"
    );
    assert_eq!(os, OsState::Off);
}
