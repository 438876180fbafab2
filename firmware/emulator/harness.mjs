#!/usr/bin/env node
// Runs the Racklet BMC firmware (the boot stage, then the image built with
// `--features emulator`, which the stage copies into SRAM) in rp2040js, with its tray around it: USB CDC-ACM, the console and
// boot-channel UARTs on pseudo-terminals, a PAC1921 on I2C0 and the GPIO lines reported.
// Events go to stdout as JSON lines; see README.md.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { GPIOPinState, RP2040 } from 'rp2040js';
import { attachI2cDevice, Pac1921, PAC1921_ADDRESS } from './pac1921.mjs';
import { openPty } from './pty.mjs';
import { RingOscillator } from './rosc.mjs';
import { Runner } from './runner.mjs';
import { UartBridge } from './uart-bridge.mjs';
import { CdcHost } from './usb-host.mjs';

const FLASH_BASE = 0x10000000;
const FLASH_BYTES = 2 * 1024 * 1024;
/** The boot stage's vector table follows the 256-byte boot2. */
const VECTOR_TABLE = FLASH_BASE + 0x100;
/** Where the emulator build reads its 64-bit unique ID (firmware/src/identity.rs). */
const UNIQUE_ID_OFFSET = 0x1fd000;
const SRAM_BASE = 0x20000000;
const SRAM_SIZE = 264 * 1024;
/** The PAC1921's shunt on the HAT (firmware/src/board.rs SHUNT_OHMS). */
const SHUNT_OHMS = 0.01;
/** Output lines reported as events (firmware/src/board.rs). */
const WATCHED_PINS = new Map([
  [2, 'DCDC_EN'],
  [3, 'EEPROM_WP'],
  [6, 'POWER_BUTTON'],
  [25, 'IDENTIFY_LED'],
]);
const DCDC_EN = 2;
/** PPB offset of the Application Interrupt and Reset Control Register. */
const AIRCR = 0xd0c;
const AIRCR_VECTKEY = 0x05fa;
const AIRCR_SYSRESETREQ = 1 << 2;
/** Keys of rp2040js's peripheral table (address bits 31..14, times 4). */
const ROSC_BASE = 0x40060;
const WATCHDOG_BASE = 0x40058;
/** WATCHDOG REASON bit for a forced (CTRL.TRIGGER) reset; otherwise it timed out. */
const WATCHDOG_REASON_FORCE = 1 << 1;

const EXIT_FAULT = 1;
/** The firmware asked for a chip reset (e.g. after a firmware update), which is not emulated. */
const EXIT_RESET = 2;

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      image: { type: 'string' },
      serial: { type: 'string' },
      'usb-pty': { type: 'string' },
      'console-pty': { type: 'string' },
      'boot-pty': { type: 'string' },
      volts: { type: 'string', default: '5.1' },
      'load-watts': { type: 'string', default: '3.1' },
      'off-watts': { type: 'string', default: '0.0' },
      scratch: { type: 'string', multiple: true, default: [] },
    },
    strict: true,
  });
  const usage =
    'usage: node harness.mjs --image FILE.bin --serial HEX16 --usb-pty PATH [--console-pty PATH] ' +
    '[--boot-pty PATH] [--volts 5.1] [--load-watts 3.1] [--off-watts 0.0] [--scratch N=0xVALUE ...]';
  if (!values.image || !values['usb-pty'] || !/^[0-9a-fA-F]{16}$/.test(values.serial ?? '')) {
    throw new Error(usage);
  }
  const number = (name) => {
    const x = Number(values[name]);
    if (!Number.isFinite(x) || x < 0) throw new Error(`--${name} must be a non-negative number`);
    return x;
  };
  const scratch = values.scratch.map((s) => {
    const m = /^([0-7])=(0x[0-9a-fA-F]{1,8}|[0-9]+)$/.exec(s);
    if (!m) throw new Error(`--scratch ${s}: expected N=VALUE with N in 0..7 (a watchdog scratch register)`);
    return [Number(m[1]), Number(m[2]) >>> 0];
  });
  return {
    scratch,
    image: values.image,
    serial: values.serial.toUpperCase(),
    usbPty: values['usb-pty'],
    consolePty: values['console-pty'],
    bootPty: values['boot-pty'],
    volts: number('volts'),
    loadWatts: number('load-watts'),
    offWatts: number('off-watts'),
  };
}

/**
 * Collects bytes handed over one at a time (UART) or per packet (USB) and passes them on
 * once per event-loop turn, so a pty gets few large writes and the JSON output few lines.
 */
function batched(deliver) {
  let parts = [];
  return (bytes) => {
    if (parts.length === 0) {
      setImmediate(() => {
        const all = Buffer.concat(parts);
        parts = [];
        deliver(all);
      });
    }
    parts.push(typeof bytes === 'number' ? Buffer.of(bytes) : bytes);
  };
}

/**
 * A chip with the flash image written, the unique ID over it, the watchdog scratch
 * registers as a reset would have left them, and the core at the boot stage's reset vector.
 */
function loadChip(image, serial, scratch) {
  const mcu = new RP2040();
  if (image.length > FLASH_BYTES) throw new Error(`the flash image is larger than ${FLASH_BYTES} bytes`);
  // No boot ROM: boot2 (which only sets up XIP, already "done" in the model) is skipped and
  // the core starts from the vector table as the boot ROM would leave it.
  mcu.flash.set(image, 0);
  mcu.flash.set(Buffer.from(serial, 'hex'), UNIQUE_ID_OFFSET); // big-endian, as identity.rs reads it
  for (const [n, value] of scratch) mcu.peripherals[WATCHDOG_BASE].scratchData[n] = value;
  mcu.core.VTOR = VECTOR_TABLE;
  mcu.core.SP = mcu.readUint32(VECTOR_TABLE);
  mcu.core.PC = mcu.readUint32(VECTOR_TABLE + 4) & ~1;
  mcu.peripherals[ROSC_BASE] = new RingOscillator(mcu, 'ROSC_BASE');
  return mcu;
}

/**
 * rp2040js reports through its logger what real silicon would turn into a HardFault; this
 * logger stops the run for those, keeps stdout for events (its default logger prints debug
 * lines there) and prints each distinct warning once on stderr.
 */
function installLogger(mcu, runner) {
  const seen = new Set();
  const warnOnce = (component, message) => {
    if (seen.has(message)) return;
    seen.add(message);
    process.stderr.write(`rp2040js [${component}] ${message}\n`);
  };
  mcu.logger = {
    debug() {},
    info(component, message) {
      // rp2040js bug: SEV only logs, it does not set the event register, so a WFE after a
      // thread-mode wake-up (embassy's executor pends itself with SEV) would sleep until
      // the next interrupt. The log call is the one place to see a SEV.
      if (message === 'SEV') mcu.core.eventRegistered = true;
    },
    warn(component, message) {
      warnOnce(component, message);
      if (component === 'CortexM0Core' && message.includes('not implemented')) {
        runner.fault('undefined-instruction', { message });
      } else if (component === 'RP2040') {
        runner.fault('bus-fault', { message }); // invalid or undefined address
      }
    },
    error(component, message) {
      warnOnce(component, message);
      if (component === 'RP2040') runner.fault('unaligned-access', { message });
    },
  };
}

/** cortex-m-rt's stack paint (the emulator image is built with `paint-stack`). */
const STACK_PAINT = 0xcccccccc;

/**
 * The most stack the firmware has used so far, in bytes: from its initial stack pointer
 * (the first word of the image the boot stage copied to SRAM) down to the longest run of
 * words that still hold the paint, which is the stack never reached, above the statics
 * (a run inside the used stack is only a frame's untouched buffer). Null if there is no
 * painted stack.
 */
function stackHighWater(mcu) {
  const top = mcu.readUint32(SRAM_BASE);
  if (top <= SRAM_BASE || top > SRAM_BASE + SRAM_SIZE) return null;
  let best = { length: 0, end: top };
  let runEnd = null;
  for (let at = top - 4; at >= SRAM_BASE; at -= 4) {
    if (mcu.readUint32(at) >>> 0 === STACK_PAINT) {
      if (runEnd === null) runEnd = at + 4;
      if (runEnd - at > best.length) best = { length: runEnd - at, end: runEnd };
    } else {
      runEnd = null;
    }
  }
  return best.length >= 256 ? top - best.end : null;
}

function registers(mcu) {
  const { core } = mcu;
  const hex = (x) => `0x${(x >>> 0).toString(16).padStart(8, '0')}`;
  const r = Object.fromEntries(Array.from({ length: 13 }, (_, i) => [`r${i}`, hex(core.registers[i])]));
  // The top of the stack, for return addresses to look up (addr2line) after a panic.
  const stack = [];
  for (let i = 0; i < 32 && core.SP + 4 * i < SRAM_BASE + SRAM_SIZE; i++) stack.push(hex(mcu.readUint32(core.SP + 4 * i)));
  const scratch = Array.from(mcu.peripherals[WATCHDOG_BASE].scratchData, hex);
  return { ...r, sp: hex(core.SP), lr: hex(core.LR), pc: hex(core.PC), xpsr: hex(core.xPSR), stack, scratch };
}

/** Breakpoints, watchdog resets and reset requests stop the run (see Runner.fault). */
function installStopHooks(mcu, runner) {
  mcu.onBreak = (code) => {
    // BKPT or UDF. (A Rust panic just spins, with panic-halt, until the watchdog bites.)
    const address = `0x${(mcu.core.PC - mcu.core.breakRewind).toString(16)}`;
    runner.fault('breakpoint', { code, address });
  };

  // A watchdog reset is reported, not emulated. rp2040js bug: once its countdown reaches
  // zero the model re-arms the alarm for the same instant, forever, so the clock never moves
  // on; stopping the alarm here lets the run end.
  const watchdog = mcu.peripherals[WATCHDOG_BASE];
  watchdog.onWatchdogTrigger = () => {
    watchdog.alarm.enable = false;
    // The firmware resets itself through the watchdog (after an update); a timeout is a
    // hang.
    runner.fault(watchdog.reason & WATCHDOG_REASON_FORCE ? 'watchdog-reset' : 'watchdog-timeout');
  };

  // rp2040js does not implement AIRCR: cortex-m's SCB::sys_reset() would spin until the
  // watchdog bites. The reset request is reported instead.
  const ppbWrite = mcu.ppb.writeUint32.bind(mcu.ppb);
  mcu.ppb.writeUint32 = (offset, value) => {
    if (offset === AIRCR && value >>> 16 === AIRCR_VECTKEY && value & AIRCR_SYSRESETREQ) {
      runner.fault('reset-request');
    } else {
      ppbWrite(offset, value);
    }
  };
}

/** The PAC1921 on I2C0, measuring a supply that follows DCDC_EN. Returns setDcdc(on). */
function attachPowerMonitor(mcu, { volts, loadWatts, offWatts }) {
  const pac = new Pac1921({ shuntOhms: SHUNT_OHMS, now: () => mcu.clock.nanos / 1e9 });
  attachI2cDevice(mcu.i2c[0], PAC1921_ADDRESS, pac);
  const setDcdc = (on) => {
    const watts = on ? loadWatts : offWatts;
    const bus = on || watts > 0 ? volts : 0;
    pac.setSupply(bus, bus > 0 ? watts / bus : 0);
  };
  setDcdc(false); // DCDC_EN has an external pull-down
  return setDcdc;
}

/**
 * Reports the output lines whenever the firmware drives them: the first time and on every
 * level change (a line it never drives is not reported).
 */
function watchPins(mcu, runner, setDcdc) {
  for (const [pin, name] of WATCHED_PINS) {
    let reported = null;
    mcu.gpio[pin].addListener((state) => {
      if (state !== GPIOPinState.High && state !== GPIOPinState.Low) return;
      const level = state === GPIOPinState.High ? 1 : 0;
      if (level === reported) return;
      reported = level;
      if (pin === DCDC_EN) setDcdc(level === 1);
      emit({ event: 'gpio', pin, name, level, ms: runner.simMs });
    });
  }
}

async function main() {
  const options = parseOptions();
  const image = readFileSync(options.image);
  const mcu = loadChip(image, options.serial, options.scratch);
  const ptys = [];
  let exiting = false;

  const runner = new Runner(mcu, {
    // Code runs from the image or from SRAM; rp2040js has no boot ROM to call into.
    isValidPc: (pc) =>
      (pc >= FLASH_BASE && pc < FLASH_BASE + image.length) || (pc >= SRAM_BASE && pc < SRAM_BASE + SRAM_SIZE),
    onFault: (fault) => {
      const reset = fault.reason === 'reset-request' || fault.reason === 'watchdog-reset';
      emit({ event: reset ? 'reset' : 'fault', ...fault, ms: runner.simMs, registers: registers(mcu) });
      exit(reset ? EXIT_RESET : EXIT_FAULT);
    },
  });
  async function exit(code) {
    if (exiting) return;
    exiting = true;
    runner.stop();
    emit({ event: 'stats', ...runner.stats(), stackBytes: stackHighWater(mcu) });
    await Promise.all(ptys.map((pty) => pty.close()));
    process.exit(code);
  }
  installLogger(mcu, runner);
  installStopHooks(mcu, runner);
  watchPins(mcu, runner, attachPowerMonitor(mcu, options));

  const openBridge = async (path, onData) => {
    // Input from the host: the idle CPU's clock first catches up with wall time.
    const input = (bytes) => {
      runner.catchUp();
      onData(bytes);
      runner.wake();
    };
    const pty = await openPty(path, input, (code) => {
      emit({ event: 'error', message: `socat for ${path} exited (${code})` });
      exit(EXIT_FAULT);
    });
    ptys.push(pty);
    return pty;
  };

  // UART0: the compute unit's console; UART1: the boot channel. Without a pty, what the
  // firmware sends is printed as events.
  const uarts = [
    { uart: mcu.uart[0], path: options.consolePty, event: 'console' },
    { uart: mcu.uart[1], path: options.bootPty, event: 'boot-channel' },
  ];
  for (const { uart, path, event } of uarts) {
    let pty = null;
    const toHost = batched((bytes) => (pty ? pty.write(bytes) : emit({ event, bytes: bytes.toString('base64') })));
    const bridge = new UartBridge(mcu, uart, toHost);
    if (path) pty = await openBridge(path, (bytes) => bridge.write(bytes));
  }

  // USB: the management link. The ptys exist before the CPU starts, so enumeration means ready.
  let usbPty = null;
  const usb = new CdcHost(mcu, {
    onEnumerated: ({ vid, pid, serial, dtr }) => {
      const enumerated = { serial: serial ?? options.serial, serialFromDevice: serial !== null };
      emit({ event: 'usb-enumerated', ...enumerated, vid, pid, dtr, ms: runner.simMs });
      emit({
        event: 'ready',
        usbPty: options.usbPty,
        consolePty: options.consolePty ?? null,
        bootPty: options.bootPty ?? null,
        serial: enumerated.serial,
        wallMs: Number(performance.now().toFixed(1)), // since the process started
        ms: runner.simMs,
      });
    },
    onData: batched((bytes) => usbPty.write(bytes)),
  });
  usbPty = await openBridge(options.usbPty, (bytes) => usb.send(bytes));

  process.on('SIGTERM', () => exit(0));
  process.on('SIGINT', () => exit(0));
  process.stdin.on('end', () => exit(0));
  process.stdin.resume();
  runner.start();
}

main().catch((e) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(EXIT_FAULT);
});
