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

export interface ResponseBodyEvents {
  /** The backend sent the whole body. */
  onEnd?(): void;
  /** The backend failed mid-body (a reset, a truncated body): the client's response is cut. */
  onError(error: unknown): void;
}

/**
 * The backend's response body, passed on chunk by chunk so that a backend that fails after
 * its headers is seen (and counted) instead of only ending the client's connection. A body
 * handed to Bun untouched streams natively, out of sight of the gateway.
 *
 * Pull-based with no queue, like the request side: the next chunk is read from the backend
 * only when Bun's response writer asks for one, so a slow client slows the backend down.
 * Bun's writer copies each chunk into the socket's buffer before it asks for the next one
 * (readStreamIntoSink: `sink.write(value)`, then `reader.read()`), so a chunk's memory is
 * given back when the next is asked for (releaseChunk): left to the garbage collector, a
 * 1 GiB download piled up ≈25 MB of them.
 *
 * A client that goes away cancels this stream, which cancels the backend's body: that is not
 * an error of the backend.
 */
export function observedBody(body: ReadableStream<Uint8Array>, events: ResponseBodyEvents): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let handedOver: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (handedOver) releaseChunk(handedOver);
        handedOver = undefined;
        let read: Awaited<ReturnType<typeof reader.read>>;
        try {
          read = await reader.read();
        } catch (error) {
          events.onError(error);
          controller.error(error);
          return;
        }
        if (read.done) {
          events.onEnd?.();
          controller.close();
          return;
        }
        controller.enqueue(read.value);
        handedOver = read.value;
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/**
 * Response bodies of at most this many bytes, by their Content-Length, are read whole before
 * they are passed on. Streaming them gains nothing (they fit in one socket buffer), while
 * passing them through a JavaScript stream costs every small JSON answer about a third of the
 * gateway's requests per second (bench: 12.1k → 7.2k req/s); read whole, one that is cut short
 * is seen, and the client gets a clean 502 instead of a truncated body.
 */
export const WHOLE_BODY_BYTES = 64 * 1024;

/**
 * What to answer with for the backend's body: the bytes of a small one read whole (rejects
 * when it was cut short), a larger or unannounced one as an observedBody stream, or null.
 * `stream`: pass it as a stream whatever its size (an event stream).
 */
export async function relayedBody(upstream: Response, events: ResponseBodyEvents & { stream?: boolean }): Promise<ArrayBuffer | ReadableStream<Uint8Array> | null> {
  if (!upstream.body) return null;
  const declared = upstream.headers.get("content-length");
  if (!events.stream && declared !== null && Number(declared) <= WHOLE_BODY_BYTES) {
    try {
      return await upstream.arrayBuffer();
    } catch (error) {
      events.onError(error);
      throw error;
    }
  }
  return observedBody(upstream.body, events);
}
