/**
 * A FIFO of bytes kept as the chunks they arrived in. Host data waits here until the
 * emulated hardware is ready for it, so nothing is dropped however much the host sends.
 */
export class ByteQueue {
  #chunks = [];
  #offset = 0; // bytes of #chunks[0] already taken
  #length = 0;

  get length() {
    return this.#length;
  }

  push(bytes) {
    if (bytes.length > 0) {
      this.#chunks.push(bytes);
      this.#length += bytes.length;
    }
  }

  /** Removes and returns up to `max` bytes from the front. */
  take(max) {
    const out = new Uint8Array(Math.min(max, this.#length));
    let filled = 0;
    while (filled < out.length) {
      const chunk = this.#chunks[0];
      const n = Math.min(chunk.length - this.#offset, out.length - filled);
      out.set(chunk.subarray(this.#offset, this.#offset + n), filled);
      filled += n;
      this.#offset += n;
      if (this.#offset === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    this.#length -= filled;
    return out;
  }
}
