import { performance } from 'node:perf_hooks';

/** How far simulated time may run ahead of wall time before the runner sleeps. */
const MAX_LEAD_NANOS = 1_000_000;
/** Longest stretch of emulation before the event loop gets a turn (I/O, signals). */
const SLICE_MS = 10;
/** Instructions between looks at the wall clock. */
const BATCH = 2048;
/** Longest sleep while the CPU waits with no timer event pending (input wakes it earlier). */
const MAX_SLEEP_MS = 100;

/**
 * Runs the emulated CPU paced to wall-clock time: simulated time since start() tracks
 * wall time since start().
 *
 * - While the CPU executes, it runs as fast as the emulator can; if that is faster than
 *   real time and simulated time gets more than MAX_LEAD_NANOS ahead, the runner sleeps.
 * - While the CPU waits (WFI, or WFE with no event), nothing needs emulating until the
 *   next clock alarm (timer, USB transfer, UART character...): the clock jumps to that
 *   alarm if it is due by wall time, otherwise to the wall time, and the runner sleeps
 *   until the alarm is due or wake() is called. So an idle firmware costs almost no CPU,
 *   and simulated time that fell behind while the CPU was busy catches up at once.
 *
 * rp2040js's own Simulator class runs unpaced batches of a million instructions and spins
 * when the CPU waits with no alarm pending, hence this loop.
 *
 * `isValidPc(pc)` is checked after each batch; fault() stops the run and calls onFault.
 */
export class Runner {
  #mcu;
  #clock;
  #isValidPc;
  #onFault;
  #fault = null;
  #running = false;
  #timeout = null;
  #immediate = null;
  #wallStartMs = 0;
  #simStartNanos = 0;
  // Statistics.
  #instructions = 0;
  #busyWallMs = 0;
  #busySimNanos = 0;
  #maxLagNanos = 0;

  constructor(mcu, { isValidPc, onFault }) {
    this.#mcu = mcu;
    this.#clock = mcu.clock;
    this.#isValidPc = isValidPc;
    this.#onFault = onFault;
  }

  start() {
    this.#running = true;
    this.#wallStartMs = performance.now();
    this.#simStartNanos = this.#clock.nanos;
    this.#schedule(0);
  }

  stop() {
    this.#running = false;
    clearTimeout(this.#timeout);
    clearImmediate(this.#immediate);
    this.#timeout = this.#immediate = null;
  }

  /** Stops the CPU; the fault is reported once the current instruction has finished. */
  fault(reason, detail = {}) {
    this.#fault ??= { reason, ...detail };
  }

  /**
   * Brings an idle CPU's clock up to wall time, so input about to be injected arrives at
   * the right simulated time (a busy CPU gets it at its own, lagging, time).
   */
  catchUp() {
    if (this.#running && this.#mcu.core.waiting) this.#idleUntil(this.#simTarget());
  }

  /** Input arrived: emulate now instead of sleeping until the next alarm. */
  wake() {
    if (this.#running && this.#timeout !== null) {
      clearTimeout(this.#timeout);
      this.#timeout = null;
      this.#schedule(0);
    }
  }

  /** Simulated milliseconds since reset. */
  get simMs() {
    return this.#clock.nanos / 1e6;
  }

  stats() {
    const wallMs = performance.now() - this.#wallStartMs;
    const simMs = (this.#clock.nanos - this.#simStartNanos) / 1e6;
    const round = (x, digits = 3) => Number(x.toFixed(digits));
    return {
      wallMs: round(wallMs, 1),
      simMs: round(simMs, 1),
      simPerWall: round(simMs / wallMs),
      // How fast the emulator runs while the CPU executes (1.0 = a real 125 MHz RP2040).
      busySimPerWall: round(this.#busySimNanos / 1e6 / this.#busyWallMs),
      busyWallMs: round(this.#busyWallMs, 1),
      instructions: this.#instructions,
      mips: round(this.#instructions / this.#busyWallMs / 1000, 2),
      maxLagMs: round(this.#maxLagNanos / 1e6),
    };
  }

  #simTarget() {
    return this.#simStartNanos + (performance.now() - this.#wallStartMs) * 1e6;
  }

  #schedule(delayMs) {
    if (delayMs <= 0) {
      this.#immediate = setImmediate(this.#run);
    } else {
      this.#timeout = setTimeout(this.#run, Math.min(delayMs, MAX_SLEEP_MS));
    }
  }

  #run = () => {
    this.#timeout = this.#immediate = null;
    const { core } = this.#mcu;
    const sliceEnd = performance.now() + SLICE_MS;
    while (this.#running) {
      if (this.#fault) {
        this.stop();
        this.#onFault(this.#fault);
        return;
      }
      if (core.waiting) {
        const target = this.#simTarget();
        const nextAlarm = this.#idleUntil(target);
        if (!core.waiting) continue;
        this.#schedule((nextAlarm - target) / 1e6);
        return;
      }
      const wallBefore = performance.now();
      const simBefore = this.#clock.nanos;
      this.#execute();
      const wallAfter = performance.now();
      this.#busyWallMs += wallAfter - wallBefore;
      this.#busySimNanos += this.#clock.nanos - simBefore;
      if (!this.#isValidPc(core.PC)) this.fault('pc-out-of-range');

      const lead = this.#clock.nanos - this.#simTarget();
      this.#maxLagNanos = Math.max(this.#maxLagNanos, -lead);
      if (lead > MAX_LEAD_NANOS) {
        this.#schedule(lead / 1e6);
        return;
      }
      if (wallAfter >= sliceEnd) {
        this.#schedule(0);
        return;
      }
    }
  };

  #execute() {
    const { core } = this.#mcu;
    const clock = this.#clock;
    const cycleNanos = 1e9 / this.#mcu.clkSys;
    let n = 0;
    while (n < BATCH && !core.waiting && this.#fault === null) {
      clock.tick(core.executeInstruction() * cycleNanos);
      n++;
    }
    this.#instructions += n;
  }

  /**
   * While the CPU waits: fires the clock alarms due by `target` in order (one may wake the
   * CPU, which then must run before time moves on), then moves the clock to `target`.
   * Returns the time of the next alarm (Infinity if none).
   */
  #idleUntil(target) {
    const { core } = this.#mcu;
    const clock = this.#clock;
    while (core.waiting) {
      const alarm = clock.nextAlarm;
      if (alarm && alarm.nanos <= target) {
        clock.tick(Math.max(alarm.nanos - clock.nanos, 0));
        continue;
      }
      if (target > clock.nanos) clock.tick(target - clock.nanos);
      return alarm ? alarm.nanos : Infinity;
    }
    return clock.nanos;
  }
}
