/**
 * Streams a request body through unchanged while counting it: the stream errors (cutting
 * the upload to the backend) once it passes `maxBytes`, and `onEnd` runs when the client has
 * sent it all, which is when the backend's time to answer starts.
 *
 * A pull source with no queue (highWaterMark 0) reads one chunk from the client only when
 * fetch asks for one, so backpressure from the backend reaches the client and at most one
 * chunk is held here. The chunks do cross JavaScript, which the bare `body: request.body`
 * pass-through avoids: they are garbage until the next collection, so a 1 GiB upload grows
 * the gateway's RSS by tens of MB where a native pass-through grows it by a few (see
 * bench/streams.ts). Without this wrapper the header deadline would have to start with the
 * request, and a slow upload longer than PROXY_TIMEOUT_MS would be cut with a 504.
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
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
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
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}
