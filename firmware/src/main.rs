//! The BMC firmware image for a tray's RP2040 (the Racklet BMC HAT, pins in `board.rs`).
//!
//! The board support around `racklet-bmc`'s core: it builds the core's peripherals from
//! embassy-rp drivers, then runs one loop that hands bytes from the USB CDC-ACM
//! management link and the boot-channel UART to the core, writes back what it answers,
//! lets it tick (console, measurements, power sequencing), and feeds the hardware
//! watchdog. USB runs in its own task. Nothing in the loop blocks on the host: a daemon
//! that stops reading loses frames, never the power sequencing.
#![no_std]
#![no_main]

mod anchors {
    include!(concat!(env!("OUT_DIR"), "/anchors.rs"));
}
mod board;
mod console;
mod identity;
mod storage;

use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_rp::gpio::{Input, Level, Output, Pull};
use embassy_rp::i2c::{self, I2c};
use embassy_rp::peripherals::{I2C0, UART0, UART1, USB};
use embassy_rp::uart::{self, BufferedUart};
use embassy_rp::usb::{self, Driver};
use embassy_rp::watchdog::{ResetReason, Watchdog};
use embassy_rp::{bind_interrupts, Peri};
use embassy_time::{Duration, Instant, Timer};
use embassy_usb::class::cdc_acm::{CdcAcmClass, State};
use embassy_usb::UsbDevice;
use embedded_io::{Read, ReadReady, Write};
use racklet_bmc::{Action, Bmc, BmcConfig};
use racklet_hal::{Monotonic, SensorError, TemperatureSensor, TrayPeripherals};
use static_cell::StaticCell;

use panic_halt as _;

bind_interrupts!(struct Irqs {
    USBCTRL_IRQ => usb::InterruptHandler<USB>;
    UART0_IRQ => uart::BufferedInterruptHandler<UART0>;
    UART1_IRQ => uart::BufferedInterruptHandler<UART1>;
});

/// pid.codes' vendor ID for open hardware, with Racklet's product ID.
const USB_VID: u16 = 0x1209;
const USB_PID: u16 = 0x7ac1;
/// Full-speed bulk packet size.
const PACKET: u16 = 64;
/// The watchdog resets the chip when the loop has not come round for this long
/// (verifying a firmware signature takes well under it).
const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(4);
/// How often the loop comes round when nothing arrives.
const TICK: Duration = Duration::from_millis(5);
/// Giving up on a USB write: the host is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// The RP2040 timer, in microseconds since reset.
struct Clock;

impl Monotonic for Clock {
    fn now_micros(&self) -> u64 {
        Instant::now().as_micros()
    }
}

/// This HAT revision has no sensor at the compute unit's SoC: the reading is named absent
/// (the daemon then relies on the chassis' own temperatures).
struct NoSocSensor;

impl TemperatureSensor for NoSocSensor {
    fn read_millicelsius(&mut self) -> Result<i32, SensorError> {
        Err(SensorError::Absent)
    }
}

#[embassy_executor::task]
async fn usb_task(mut device: UsbDevice<'static, Driver<'static, USB>>) -> ! {
    device.run().await
}

/// A line's level as the board holds it when the firmware starts. `embassy_rp::init` has
/// reset the pads, so this is what the HAT's circuit gives: with this revision's pull-down,
/// low, so a BMC reset powers its tray off; a HAT that latches DCDC_EN in hardware keeps
/// the tray on, and the BMC adopts that.
fn adopt_level(mut pin: Peri<'static, impl embassy_rp::gpio::Pin>) -> Output<'static> {
    let high = Input::new(pin.reborrow(), Pull::None).is_high();
    Output::new(pin, if high { Level::High } else { Level::Low })
}

#[cfg(not(feature = "emulator"))]
type Keys = storage::FlashKeys;
#[cfg(not(feature = "emulator"))]
type Slots = storage::FlashSlots;
#[cfg(feature = "emulator")]
type Keys = storage::RamKeys;
#[cfg(feature = "emulator")]
type Slots = storage::RamSlots;

type BoardPeripherals = TrayPeripherals<
    Output<'static>,
    Output<'static>,
    I2c<'static, I2C0, i2c::Blocking>,
    console::Console,
    NoSocSensor,
    Clock,
>;
type BoardBmc = Bmc<
    Output<'static>,
    Output<'static>,
    I2c<'static, I2C0, i2c::Blocking>,
    console::Console,
    NoSocSensor,
    Clock,
    Keys,
    Slots,
>;

/// Boots the core into a static. Out of line and not async: the core is large, and built
/// inside `main` its temporaries would stay in `main`'s stack frame for good (the image
/// runs from SRAM, so the stack is the RAM the image leaves).
#[inline(never)]
fn boot_core(
    config: BmcConfig,
    peripherals: BoardPeripherals,
    keys: Keys,
    slots: Slots,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Option<&'static mut BoardBmc> {
    static BMC: StaticCell<BoardBmc> = StaticCell::new();
    let bmc = Bmc::boot(config, peripherals, keys, slots, rng).ok()?;
    Some(BMC.init(bmc))
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_rp::init(Default::default());
    let mut watchdog = Watchdog::new(p.WATCHDOG);
    let reset_by_watchdog = matches!(watchdog.reset_reason(), Some(ResetReason::TimedOut));
    watchdog.start(WATCHDOG_TIMEOUT);

    // The slot the boot stage started and why (scratch 1 is cleared, so a reset that does
    // not go through the stage is never mistaken for its choice).
    let booted = racklet_bootsel::select::parse_handoff(watchdog.get_scratch(1));
    watchdog.set_scratch(1, 0);

    // Identity and storage.
    static FLASH: StaticCell<storage::FlashCell> = StaticCell::new();
    let flash: storage::SharedFlash = FLASH.init(core::cell::RefCell::new(
        embassy_rp::flash::Flash::new_blocking(p.FLASH),
    ));
    #[cfg(not(feature = "emulator"))]
    let (serial, keys, slots) = (
        identity::unique_id(flash),
        Ok::<_, storage::StorageError>(storage::FlashKeys::new(flash)),
        storage::FlashSlots::new(flash),
    );
    #[cfg(feature = "emulator")]
    let (serial, keys, slots) = {
        // Zeroed statics, filled in place: a value passed to `StaticCell::init` is built on
        // the stack first, and these are larger than the stack.
        const SLOT: usize = storage::RAM_SLOT_BYTES as usize;
        static KEYS: static_cell::ConstStaticCell<[[u8; 4096]; 2]> =
            static_cell::ConstStaticCell::new([[0; 4096]; 2]);
        static SLOTS: static_cell::ConstStaticCell<[[u8; SLOT]; 2]> =
            static_cell::ConstStaticCell::new([[0; SLOT]; 2]);
        (
            identity::unique_id(),
            storage::RamKeys::new(flash, KEYS.take()),
            storage::RamSlots::new(SLOTS.take()),
        )
    };
    let mut rng = identity::rng(serial, Instant::now().as_micros());

    // USB CDC-ACM: the management link. The serial number is the flash's unique ID.
    static SERIAL: StaticCell<heapless::String<16>> = StaticCell::new();
    let serial_str: &'static str = SERIAL.init(identity::serial_string(serial)).as_str();
    let mut config = embassy_usb::Config::new(USB_VID, USB_PID);
    config.manufacturer = Some("Racklet");
    config.product = Some("Racklet BMC");
    config.serial_number = Some(serial_str);
    config.max_power = 100;
    config.max_packet_size_0 = 64;
    static CONFIG_DESC: StaticCell<[u8; 256]> = StaticCell::new();
    static BOS_DESC: StaticCell<[u8; 256]> = StaticCell::new();
    static MSOS_DESC: StaticCell<[u8; 0]> = StaticCell::new();
    static CONTROL: StaticCell<[u8; 64]> = StaticCell::new();
    static CDC_STATE: StaticCell<State> = StaticCell::new();
    let mut builder = embassy_usb::Builder::new(
        Driver::new(p.USB, Irqs),
        config,
        CONFIG_DESC.init([0; 256]),
        BOS_DESC.init([0; 256]),
        MSOS_DESC.init([]),
        CONTROL.init([0; 64]),
    );
    let class = CdcAcmClass::new(&mut builder, CDC_STATE.init(State::new()), PACKET);
    let device = builder.build();
    // The task pool holds one USB task and this is the only spawn: it cannot fail, and
    // without USB the BMC would still run its tray.
    if let Ok(task) = usb_task(device) {
        spawner.spawn(task);
    }
    let (mut usb_tx, mut usb_rx) = class.split();

    // The tray: UART0 console, UART1 boot channel, I2C0 PAC1921, GPIO lines.
    let mut uart_config = uart::Config::default();
    uart_config.baudrate = board::BAUD;
    static CONSOLE_TX: StaticCell<[u8; 256]> = StaticCell::new();
    static CONSOLE_RX: StaticCell<[u8; 1024]> = StaticCell::new();
    let console = console::Console(BufferedUart::new(
        p.UART0,
        p.PIN_0,
        p.PIN_1,
        Irqs,
        CONSOLE_TX.init([0; 256]),
        CONSOLE_RX.init([0; 1024]),
        uart_config,
    ));
    static BOOT_TX: StaticCell<[u8; 1024]> = StaticCell::new();
    static BOOT_RX: StaticCell<[u8; 1024]> = StaticCell::new();
    let mut boot_channel = console::Console(BufferedUart::new(
        p.UART1,
        p.PIN_8,
        p.PIN_9,
        Irqs,
        BOOT_TX.init([0; 1024]),
        BOOT_RX.init([0; 1024]),
        uart_config,
    ));
    let i2c = I2c::new_blocking(p.I2C0, p.PIN_5, p.PIN_4, i2c::Config::default());
    let peripherals = TrayPeripherals {
        dcdc_enable: adopt_level(p.PIN_2),
        eeprom_wp: Output::new(p.PIN_3, Level::High),
        power_button: Output::new(p.PIN_6, Level::Low),
        i2c,
        console,
        soc_temperature: NoSocSensor,
        clock: Clock,
        shunt_ohms: board::SHUNT_OHMS,
    };
    let config = BmcConfig {
        serial,
        board: heapless::String::try_from(board::BOARD).unwrap_or_default(),
        firmware_version: board::FIRMWARE_VERSION,
        pac_gain: board::PAC_GAIN,
        power: board::power_config(),
        reset_by_watchdog,
        booted,
    };
    let mut identify_led = Output::new(p.PIN_25, Level::Low);
    let Some(bmc) = keys
        .ok()
        .and_then(|keys| boot_core(config, peripherals, keys, slots, &mut rng))
    else {
        // The key store does not parse or flash fails: blink the identify LED and keep
        // feeding the watchdog, so the chip does not reset in a loop; a person
        // re-provisions the BMC.
        loop {
            identify_led.toggle();
            watchdog.feed(WATCHDOG_TIMEOUT);
            Timer::after_millis(250).await;
        }
    };

    // The signing keys built into this image join the key store (written once, not at
    // every boot: flash wears).
    for key in anchors::BUILT_IN {
        if !bmc.key_store().trust_anchors.contains(key) {
            // A full anchor list or a flash failure leaves updates to the keys it has.
            let _ = bmc.add_trust_anchor(*key);
        }
    }

    let mut packet = [0u8; PACKET as usize];
    let mut outbox: heapless::Vec<u8, 4096> = heapless::Vec::new();
    let mut boot_in = [0u8; 256];
    loop {
        match select(usb_rx.read_packet(&mut packet), Timer::after(TICK)).await {
            Either::First(Ok(n)) => bmc.receive(&packet[..n], &mut rng, |frame| {
                // A leading delimiter ends whatever a cut-off earlier frame left in the
                // daemon's reader; a frame that does not fit is dropped whole (the
                // daemon retries).
                if outbox.len() + 1 + frame.len() <= outbox.capacity() {
                    let _ = outbox.push(0);
                    let _ = outbox.extend_from_slice(frame);
                }
            }),
            // Not configured by a host (or unplugged): keep the tray going.
            Either::First(Err(_)) => Timer::after(TICK).await,
            Either::Second(()) => {}
        }
        while boot_channel.read_ready().unwrap_or(false) {
            match boot_channel.read(&mut boot_in) {
                Ok(0) | Err(_) => break,
                Ok(n) => bmc.boot_channel_bytes(&boot_in[..n], |frame| {
                    let _ = boot_channel.write_all(frame);
                }),
            }
        }
        bmc.tick();
        let mut sent_all = true;
        for chunk in outbox.chunks(usize::from(PACKET)) {
            match select(usb_tx.write_packet(chunk), Timer::after(WRITE_TIMEOUT)).await {
                Either::First(Ok(())) => {}
                _ => {
                    sent_all = false;
                    break;
                }
            }
        }
        // A transfer that ends on a full packet needs a zero-length packet, or the host
        // keeps its last bytes (the frame's delimiter) until more data comes.
        if sent_all && !outbox.is_empty() && outbox.len().is_multiple_of(usize::from(PACKET)) {
            let _ = select(usb_tx.write_packet(&[]), Timer::after(WRITE_TIMEOUT)).await;
        }
        outbox.clear();
        watchdog.feed(WATCHDOG_TIMEOUT);
        if let Some(Action::Reboot) = bmc.take_action() {
            // Through the watchdog: it resets the peripherals (USB, DMA) as well as the
            // cores, and the boot stage then runs as after power-on.
            watchdog.trigger_reset();
        }
    }
}
