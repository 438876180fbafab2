import { I2CMode } from 'rp2040js';

/**
 * A register-level PAC1921 power monitor for the emulated I2C bus, mirroring
 * crates/racklet-twin/src/pac1921.rs (register map and formulas from crates/racklet-pac1921).
 *
 * Modelled as the twin does: IDs (product 0x5B, manufacturer 0x5D, revision 0x02), the
 * three writable registers, a register pointer that auto-increments on every data byte
 * written or read (the driver reads each 16-bit result as two bytes from one pointer),
 * VPOWER pin-controlled mode with the READ/INT override (setting INT_EN opens a window,
 * clearing it latches the window's averages into the result registers), accumulation
 * capped at 2048 samples' worth of time, a new mode, gain or sample count restarting the
 * window, SLEEP stopping accumulation, and results saturating at full scale with overflow
 * flags. The READ/INT pin reads low (the HAT leaves it unconnected).
 *
 * Simplified where the firmware does not care: the free-run modes (MXSL 1..3) never latch
 * results (the driver only uses pin-controlled mode), and the supply is piecewise constant,
 * so each window's integral is exact.
 */

export const PAC1921_ADDRESS = 0x4c;

const REG = {
  GAIN_CONFIG: 0x00,
  INTEGRATION_CONFIG: 0x01,
  CONTROL: 0x02,
  VBUS_RESULT: 0x10,
  VSENSE_RESULT: 0x12,
  OVERFLOW_STATUS: 0x1c,
  VPOWER_RESULT: 0x1d,
  PRODUCT_ID: 0xfd,
  MANUFACTURER_ID: 0xfe,
  REVISION: 0xff,
};
const PRODUCT_ID = 0x5b;
const MANUFACTURER_ID = 0x5d;
const REVISION = 0x02;

const RESET_INTEGRATION_CONFIG = 0x0c;
const READ_INT_OVERRIDE = 1 << 1;
const INT_EN = 1 << 0;
const SMPL_MASK = 0xf0;
const FILTERS = (1 << 3) | (1 << 2); // VSENSE and VBUS post filters
const RES_11BIT = (1 << 7) | (1 << 6); // I_RES and V_RES
const SLEEP = 1 << 2;
const MODE_VPOWER_PIN_CONTROLLED = 0;

const OVERFLOW_VSENSE = 1 << 2;
const OVERFLOW_VBUS = 1 << 1;
const OVERFLOW_VPOWER = 1 << 0;

const RESULT_MAX = 1023;
const VBUS_FSR_VOLTS = 32;
const VSENSE_FSR_VOLTS = 0.1;

/** Integration period at 2048 samples (SMPL code 11), microseconds (racklet-pac1921). */
const PERIOD_2048_US_14BIT_FILTERED = 2_941_000;
const PERIOD_2048_US_11BIT_UNFILTERED = 1_026_000;

/** A 10-bit result code for `fraction` of full scale, left-justified in 16 bits. */
function encode(fraction) {
  const scaled = fraction * RESULT_MAX + 0.5;
  const overflow = scaled >= RESULT_MAX + 1;
  let code;
  if (Number.isNaN(scaled) || scaled < 0) code = 0;
  else if (overflow) code = RESULT_MAX;
  else code = Math.floor(scaled);
  return { word: code << 6, overflow };
}

export class Pac1921 {
  gain = 0;
  integration = RESET_INTEGRATION_CONFIG;
  control = 0;
  #pointer = 0;
  #pointerNext = false; // the next written byte sets the pointer
  #integrating = false;
  #acc = [0, 0, 0, 0]; // volt-seconds, amp-seconds, watt-seconds, seconds of the open window
  #results = { vbus: 0, vsense: 0, vpower: 0, overflow: 0 };
  #volts = 0;
  #amps = 0;
  #shuntOhms;
  #now;
  #lastSeconds;

  /** `now()` gives simulated time in seconds. */
  constructor({ shuntOhms, now }) {
    this.#shuntOhms = shuntOhms;
    this.#now = now;
    this.#lastSeconds = now();
  }

  /** The tray's supply from now on; the open window keeps what it integrated so far. */
  setSupply(volts, amps) {
    this.#advance();
    this.#volts = volts;
    this.#amps = amps;
  }

  // I2C device interface (see attachI2cDevice).
  start(read) {
    this.#pointerNext = !read;
  }

  writeByte(byte) {
    if (this.#pointerNext) {
      this.#pointerNext = false;
      this.#pointer = byte;
    } else {
      this.#writeRegister(byte);
      this.#pointer = (this.#pointer + 1) & 0xff;
    }
    return true;
  }

  readByte() {
    const value = this.#readRegister(this.#pointer);
    this.#pointer = (this.#pointer + 1) & 0xff;
    return value;
  }

  #writeRegister(byte) {
    this.#advance();
    const before = this.#windowKey();
    switch (this.#pointer) {
      case REG.GAIN_CONFIG:
        this.gain = byte;
        break;
      case REG.INTEGRATION_CONFIG:
        this.integration = byte;
        break;
      case REG.CONTROL:
        this.control = byte;
        break;
      default: // read-only registers ignore writes
    }
    if (this.#windowKey() !== before) this.#acc = [0, 0, 0, 0];
    this.#updateIntegrating();
  }

  /** A new mode, gain or sample count starts a fresh window. */
  #windowKey() {
    return [this.gain, this.control, this.integration & SMPL_MASK].join();
  }

  #readRegister(address) {
    const { vbus, vsense, vpower, overflow } = this.#results;
    switch (address) {
      case REG.GAIN_CONFIG:
        return this.gain;
      case REG.INTEGRATION_CONFIG:
        return this.integration;
      case REG.CONTROL:
        return this.control;
      case REG.VBUS_RESULT:
        return vbus >> 8;
      case REG.VBUS_RESULT + 1:
        return vbus & 0xff;
      case REG.VSENSE_RESULT:
        return vsense >> 8;
      case REG.VSENSE_RESULT + 1:
        return vsense & 0xff;
      case REG.OVERFLOW_STATUS:
        return overflow;
      case REG.VPOWER_RESULT:
        return vpower >> 8;
      case REG.VPOWER_RESULT + 1:
        return vpower & 0xff;
      case REG.PRODUCT_ID:
        return PRODUCT_ID;
      case REG.MANUFACTURER_ID:
        return MANUFACTURER_ID;
      case REG.REVISION:
        return REVISION;
      default:
        return 0;
    }
  }

  get #mode() {
    return (this.control >> 6) & 0b11;
  }

  /** With the override set, INT_EN is the READ/INT level; otherwise the (low) pin is. */
  #updateIntegrating() {
    const now = !!(this.integration & READ_INT_OVERRIDE) && !!(this.integration & INT_EN);
    if (!this.#integrating && now) {
      this.#acc = [0, 0, 0, 0];
    } else if (this.#integrating && !now && this.#mode === MODE_VPOWER_PIN_CONTROLLED) {
      this.#latch();
    }
    this.#integrating = now;
  }

  /** Integrates the supply since the last call into the open window. */
  #advance() {
    const now = this.#now();
    const dt = now - this.#lastSeconds;
    this.#lastSeconds = now;
    const sleeping = !!(this.control & SLEEP);
    if (!this.#integrating || sleeping || this.#mode !== MODE_VPOWER_PIN_CONTROLLED) return;
    const room = Math.max(this.#maxIntegrationSeconds() - this.#acc[3], 0);
    const used = Math.min(dt, room);
    const inputs = [this.#volts, this.#amps, this.#volts * this.#amps, 1];
    this.#acc = this.#acc.map((a, i) => a + inputs[i] * used);
  }

  /** Pin-controlled accumulation stops after 2048 samples (racklet-pac1921 Config::period_us). */
  #maxIntegrationSeconds() {
    const highResolution = (this.gain & RES_11BIT) === 0;
    const filtered = (this.integration & FILTERS) !== 0;
    let us;
    if (highResolution && filtered) us = PERIOD_2048_US_14BIT_FILTERED;
    else if (!highResolution && !filtered) us = PERIOD_2048_US_11BIT_UNFILTERED;
    else if (highResolution) us = Math.floor((PERIOD_2048_US_14BIT_FILTERED * 2) / 3);
    else us = Math.floor((PERIOD_2048_US_11BIT_UNFILTERED * 3) / 2);
    return us * 1e-6;
  }

  /** Ends the window: publishes its averages and starts a new one. */
  #latch() {
    const dvGain = 1 << Math.min(this.gain & 0b111, 5);
    const diGain = 1 << ((this.gain >> 3) & 0b111);
    const vbusFsr = VBUS_FSR_VOLTS / dvGain;
    const currentFsr = VSENSE_FSR_VOLTS / diGain / this.#shuntOhms;
    const t = this.#acc[3];
    const average = (i) => (t > 0 ? this.#acc[i] / t : 0);
    const vbus = encode(average(0) / vbusFsr);
    const vsense = encode(average(1) / currentFsr);
    const vpower = encode(average(2) / (vbusFsr * currentFsr));
    this.#results = {
      vbus: vbus.word,
      vsense: vsense.word,
      vpower: vpower.word,
      overflow:
        (vbus.overflow ? OVERFLOW_VBUS : 0) |
        (vsense.overflow ? OVERFLOW_VSENSE : 0) |
        (vpower.overflow ? OVERFLOW_VPOWER : 0),
    };
    this.#acc = [0, 0, 0, 0];
  }
}

/**
 * Puts `device` on an rp2040js I2C controller at 7-bit `address`. The device gets
 * start(read), writeByte(byte) -> ack, readByte() -> byte; other addresses NACK.
 * Transfers complete at once (no bus timing), which the firmware's blocking driver accepts.
 */
export function attachI2cDevice(i2c, address, device) {
  i2c.onStart = () => i2c.completeStart();
  i2c.onConnect = (target, mode) => {
    const selected = target === address;
    if (selected) device.start(mode === I2CMode.Read);
    i2c.completeConnect(selected);
  };
  i2c.onWriteByte = (byte) => i2c.completeWrite(device.writeByte(byte));
  i2c.onReadByte = () => i2c.completeRead(device.readByte());
  i2c.onStop = () => i2c.completeStop();
}
