import { ByteQueue } from './byte-queue.mjs';

/** Registers rp2040js does not implement (reads give 0xffffffff), with their reset values. */
const UARTIFLS = 0x34;
const UARTDMACR = 0x48;
const UNMODELLED_RESET_VALUES = [
  [UARTIFLS, 0x12],
  [UARTDMACR, 0],
];
/** UARTRIS / UARTIMSC transmit interrupt bit. */
const UART_TX_INTERRUPT = 1 << 5;
/** Line rate until the firmware has programmed a divider: the board's 115200 baud. */
const DEFAULT_BAUD = 115200;
/** Start bit, 8 data bits, stop bit. */
const BITS_PER_BYTE = 10;

/**
 * Connects one rp2040js UART to the host side: every byte the firmware transmits goes to
 * `onTx(byte)`; bytes given to `write` enter the receive FIFO one character time apart.
 */
export class UartBridge {
  #uart;
  #queue = new ByteQueue();
  #alarm;
  #feeding = false;

  constructor(mcu, uart, onTx) {
    this.#uart = uart;
    this.#alarm = mcu.clock.createAlarm(() => this.#feed());

    // rp2040js bug: RPUART.checkInterrupts() sets the TX interrupt on every call, so a
    // cleared TX interrupt comes straight back and, once the firmware enables TXIM, the
    // IRQ line never drops: embassy-rp's BufferedUart handler runs forever and boot never
    // reaches USB. Here cleared bits stay cleared, and TX is raised only when a byte is
    // written (the model transmits instantly, so its FIFO is empty again at once), which
    // is the moment real hardware would raise it as the FIFO drains.
    uart.checkInterrupts = () => {
      mcu.setInterrupt(uart.irq, !!(uart.interruptStatus & uart.interruptMask));
    };
    uart.onByte = (byte) => {
      onTx(byte);
      uart.interruptStatus |= UART_TX_INTERRUPT;
      uart.checkInterrupts();
    };

    // rp2040js gap: UARTDMACR reads 0xffffffff, so embassy-rp's interrupt handler, which
    // returns at once when RXDMAE is set (DMA owns the receiver), never empties the RX FIFO:
    // the RX interrupt stays raised and the CPU does nothing but enter that handler. These
    // registers are plain storage here (no DMA is modelled behind them).
    const registers = new Map(UNMODELLED_RESET_VALUES);
    const read = uart.readUint32.bind(uart);
    const write = uart.writeUint32.bind(uart);
    uart.readUint32 = (offset) => (registers.has(offset) ? registers.get(offset) : read(offset));
    uart.writeUint32 = (offset, value) => {
      if (registers.has(offset)) registers.set(offset, value);
      else write(offset, value);
    };
  }

  /** Queues bytes for the firmware to receive. */
  write(bytes) {
    this.#queue.push(bytes);
    if (!this.#feeding) {
      this.#feeding = true;
      this.#alarm.schedule(0);
    }
  }

  /**
   * Moves one byte into the 32-byte receive FIFO per character time. While the FIFO is
   * full (the firmware's ring buffer is full and it masked RX) the byte waits here: the
   * bridge applies back-pressure instead of modelling an overrun.
   */
  #feed() {
    const uart = this.#uart;
    if (uart.enabled && uart.rxEnabled && !uart.rxFIFO.full) {
      uart.feedByte(this.#queue.take(1)[0]);
    }
    if (this.#queue.length > 0) {
      this.#alarm.schedule(this.#characterNanos());
    } else {
      this.#feeding = false;
    }
  }

  #characterNanos() {
    const baud = this.#uart.baudRate;
    const rate = Number.isFinite(baud) && baud > 0 ? baud : DEFAULT_BAUD;
    return (BITS_PER_BYTE * 1e9) / rate;
  }
}
