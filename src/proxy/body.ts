/**
 * Streams a request body through unchanged while counting it: the stream errors (cutting
 * the upload to the backend) once it passes `maxBytes`, and `onEnd` runs when the client has
 * sent it all, which is when the backend's time to answer starts.
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
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (maxBytes > 0 && seen > maxBytes) controller.error(new BodyTooLarge());
        else controller.enqueue(chunk);
      },
      flush: onEnd,
    }),
  );
}
