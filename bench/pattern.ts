/** A fixed 1 MiB block of pseudo-random bytes: the benchmark's payloads repeat it. */
export function patternBlock(): Uint8Array {
  const block = new Uint8Array(1024 * 1024);
  let state = 0x9e3779b9;
  for (let i = 0; i < block.length; i++) {
    // xorshift32: incompressible enough, and the same in every process.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    block[i] = state & 0xff;
  }
  return block;
}

/** sha256 of `bytes` bytes of the repeated pattern, computed locally. */
export function patternSha256(bytes: number): string {
  const block = patternBlock();
  const hasher = new Bun.CryptoHasher("sha256");
  for (let sent = 0; sent < bytes; sent += block.length) hasher.update(block.subarray(0, Math.min(block.length, bytes - sent)));
  return hasher.digest("hex");
}

/** A stream of `bytes` bytes of the pattern, produced as it is read. */
export function patternStream(bytes: number): ReadableStream<Uint8Array> {
  const block = patternBlock();
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      const chunk = block.subarray(0, Math.min(block.length, bytes - sent));
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
}
