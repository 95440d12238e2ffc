/**
 * Streams a request body through unchanged while counting it: the stream errors (cutting
 * the upload to the backend) once it passes `maxBytes`, and `onEnd` runs when the client has
 * sent it all, which is when the backend's time to answer starts. Without this wrapper the
 * header deadline would have to start with the request, and an upload slower than
 * PROXY_TIMEOUT_MS would be cut with a 504.
 *
 * A pull source with no queue (highWaterMark 0) reads one chunk from the client only when
 * fetch asks for one, so backpressure from the backend reaches the client and at most one
 * chunk is held here.
 *
 * Each chunk crosses JavaScript as its own 64 KB ArrayBuffer. Left to the garbage collector,
 * a 1 GiB upload piled up 70–90 MB of them before a collection ran; the bare pass-through
 * grows by a few MB. So each chunk's memory is given back as soon as fetch is done with it
 * (see releaseChunk), which keeps the upload's RSS growth near the pass-through's
 * (bench/streams.ts).
 */
export class BodyTooLarge extends Error {
  constructor() {
    super("request body exceeds MAX_BODY_BYTES");
    this.name = "BodyTooLarge";
  }
}

export function meteredBody(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  onEnd: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let seen = 0;
  // The chunk handed to fetch last. fetch's request-body pump writes a chunk (its native
  // sink copies the bytes into its own send buffer during write()) before it reads the next
  // one, so when pull runs again that chunk is no longer needed by anyone.
  let handedOver: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (handedOver) releaseChunk(handedOver);
        handedOver = undefined;
        const { value, done } = await reader.read();
        if (done) {
          onEnd();
          controller.close();
          return;
        }
        seen += value.byteLength;
        if (maxBytes > 0 && seen > maxBytes) {
          controller.error(new BodyTooLarge());
          await reader.cancel();
          return;
        }
        controller.enqueue(value);
        handedOver = value;
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/**
 * Frees a chunk's bytes now instead of at the next garbage collection: transferring its
 * ArrayBuffer to a new, empty one detaches it and releases the old backing store.
 * Only a chunk that is the whole of its buffer is released, since other views of a shared
 * buffer would lose their bytes too; a buffer that cannot be detached is left to the GC.
 */
export function releaseChunk(chunk: Uint8Array): void {
  const buffer = chunk.buffer;
  if (!(buffer instanceof ArrayBuffer) || chunk.byteOffset !== 0 || buffer.byteLength !== chunk.byteLength) return;
  try {
    buffer.transfer(0);
  } catch {
    // Not detachable (e.g. pinned by the runtime): the collector frees it later.
  }
}
