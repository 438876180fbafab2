import { randomBytes } from 'node:crypto';
import { BasePeripheral } from 'rp2040js';

const STATUS = 0x18;
const RANDOMBIT = 0x1c;
const STATUS_STABLE = 1 << 31;
const STATUS_ENABLED = 1 << 12;

/**
 * The ring oscillator, which rp2040js leaves unimplemented: its RANDOMBIT register would
 * read all ones, and the firmware seeds its key generator from it (embassy-rp's RoscRng).
 * This one reports the oscillator enabled and stable and gives random bits from the host,
 * so every emulated BMC gets its own identity key as a real one does. Other registers just
 * keep what the firmware writes (their reset values do not matter to it).
 */
export class RingOscillator extends BasePeripheral {
  #registers = new Map();
  #bits = [];

  readUint32(offset) {
    switch (offset) {
      case STATUS:
        return (STATUS_STABLE | STATUS_ENABLED) >>> 0;
      case RANDOMBIT:
        return this.#randomBit();
      default:
        return this.#registers.get(offset) ?? 0;
    }
  }

  writeUint32(offset, value) {
    this.#registers.set(offset, value);
  }

  #randomBit() {
    if (this.#bits.length === 0) {
      for (const byte of randomBytes(64)) {
        for (let i = 0; i < 8; i++) this.#bits.push((byte >> i) & 1);
      }
    }
    return this.#bits.pop();
  }
}
