/** Growable little-endian byte buffer for assembling a GGUF header in memory. */
export class ByteBuilder {
  private buffer = Buffer.alloc(64 * 1024);
  private used = 0;

  get length(): number {
    return this.used;
  }

  uint8(value: number): void {
    this.reserve(1);
    this.used = this.buffer.writeUInt8(value, this.used);
  }

  uint32(value: number): void {
    this.reserve(4);
    this.used = this.buffer.writeUInt32LE(value, this.used);
  }

  int32(value: number): void {
    this.reserve(4);
    this.used = this.buffer.writeInt32LE(value, this.used);
  }

  uint64(value: number | bigint): void {
    this.reserve(8);
    this.used = this.buffer.writeBigUInt64LE(BigInt(value), this.used);
  }

  float32(value: number): void {
    this.reserve(4);
    this.used = this.buffer.writeFloatLE(value, this.used);
  }

  /** GGUF string: uint64 byte length, then UTF-8 bytes without a terminator. */
  string(value: string): void {
    const byteLength = Buffer.byteLength(value, 'utf8');
    this.uint64(byteLength);
    this.reserve(byteLength);
    this.used += this.buffer.write(value, this.used, 'utf8');
  }

  zeros(count: number): void {
    this.reserve(count);
    this.buffer.fill(0, this.used, this.used + count);
    this.used += count;
  }

  toBuffer(): Buffer {
    return this.buffer.subarray(0, this.used);
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.buffer.length) return;
    const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.used + extra));
    this.buffer.copy(grown, 0, 0, this.used);
    this.buffer = grown;
  }
}
