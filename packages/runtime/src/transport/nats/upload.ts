import type { Msg } from '@nats-io/transport-node';
import { type DynamoError, InvalidArgumentError, PayloadTooLargeError, UnavailableError } from '../../errors';
import type { Logger } from '../../logger';
import { unrefTimeout } from '../../util/abort';
import { ChunkAssembler, type DecodedRequest, errorFrame, pullFrame } from '../frames';
import { type PlaneCore, type Route, errorMessage } from './common';

const utf8 = new TextDecoder();

/**
 * The serving side of a request announced with `~3*` (too large for one NATS message): reserves
 * its size in the plane's assembly budget, pulls the chunks to an inbox token of its own, and
 * hands the whole request on once every byte arrived. Chunks that stop arriving for the plane's
 * `heartbeatTimeoutMs` drop it (refused with UNAVAILABLE: no handler ran, so the caller may send
 * it again); a chunk that does not continue it is logged and skipped.
 */
export class RequestUpload implements Route {
  private readonly assembly: ChunkAssembler;
  private token: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  /**
   * Starts the upload, or refuses it at once (too large, budget spent).
   * @param onComplete takes the request with its payload decoded
   */
  static start(
    plane: PlaneCore,
    logger: Logger,
    reply: string,
    request: DecodedRequest & { upload: number },
    onComplete: (request: DecodedRequest) => void,
  ): void {
    const bytes = request.upload;
    const refuse = (e: DynamoError): void => publishQuietly(plane, reply, errorFrame(0, e));
    if (bytes > plane.maxPayload) return refuse(new PayloadTooLargeError(bytes, plane.maxPayload));
    if (!plane.reserveAssembly(bytes)) {
      logger.warn('chunked request refused: assembly budget spent', { request_id: request.requestId, bytes });
      return refuse(new PayloadTooLargeError(bytes, plane.maxPayload, { retryable: true }));
    }
    new RequestUpload(plane, logger, reply, request, onComplete).pull();
  }

  private constructor(
    private readonly plane: PlaneCore,
    private readonly logger: Logger,
    private readonly reply: string,
    private readonly request: DecodedRequest & { upload: number },
    private readonly onComplete: (request: DecodedRequest) => void,
  ) {
    this.assembly = new ChunkAssembler(request.upload, request.upload);
  }

  private pull(): void {
    const { token, subject } = this.plane.register(this);
    this.token = token;
    this.timer = unrefTimeout(() => this.expire(), this.plane.heartbeatTimeoutMs);
    publishQuietly(this.plane, this.reply, pullFrame(subject));
  }

  /** @see Route.onMessage: one chunk of the payload. */
  onMessage(msg: Msg): void {
    if (this.done) return;
    const r = this.assembly.add(msg.data);
    if (r.kind === 'skipped' || r.kind === 'too-large') {
      this.logger.warn('chunk skipped', {
        request_id: this.request.requestId,
        reason: r.kind === 'too-large' ? `announces ${r.total} bytes` : r.reason,
      });
      return;
    }
    this.timer?.refresh();
    if (r.kind === 'more') return;
    this.end();
    let payload: unknown;
    try {
      payload = JSON.parse(utf8.decode(r.bytes));
    } catch (e) {
      publishQuietly(
        this.plane,
        this.reply,
        errorFrame(0, new InvalidArgumentError(`request payload is not JSON: ${errorMessage(e)}`)),
      );
      return;
    }
    this.onComplete({ ...this.request, payload, upload: undefined });
  }

  private expire(): void {
    if (this.done) return;
    this.end();
    this.logger.warn('chunked request dropped: chunks stopped arriving', { request_id: this.request.requestId });
    publishQuietly(
      this.plane,
      this.reply,
      errorFrame(
        0,
        new UnavailableError(
          `request ${this.request.requestId}: its chunks stopped arriving for ${this.plane.heartbeatTimeoutMs} ms`,
        ),
      ),
    );
  }

  private end(): void {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.token !== undefined) this.plane.unregister(this.token);
    this.plane.releaseAssembly(this.request.upload);
  }
}

function publishQuietly(plane: PlaneCore, subject: string, frame: string): void {
  try {
    plane.nc.publish(subject, frame);
  } catch {
    // connection closing: the caller times out
  }
}
