/**
 * The NATS JetStream {@link WorkQueue} ({@link JetStreamWorkQueue}).
 *
 * Layout on the server (all created on first use, shared by every process of the queue):
 * - stream `DYNAMO_{NS}_{QUEUE}` (`queueStreamName`) on the single subject
 *   `dynamo.{ns}.queue.{queue}` (`queueSubject`), WorkQueue retention (a job leaves the
 *   stream when acked or termed), file storage;
 * - durable pull consumer `workers` on it, shared by all consumers of the
 *   queue: explicit acks, `ack_wait` = `ackWaitMs`, server `max_deliver` = -1 (unlimited; see below);
 * - stream `DYNAMO_{NS}_{QUEUE}_DLQ` on `dynamo.{ns}.queue.{queue}.dead` (`deadLetterSubject`),
 *   limits retention (kept `deadLetterMaxAgeMs`, default 7 days, at most 100 000 letters, oldest
 *   dropped first), so dead letters stay inspectable (`nats stream view`), each a JSON
 *   `JetStreamDeadLetter`.
 *
 * `maxDeliver` is enforced by the client, not the server: under WorkQueue retention a message that
 * reaches the server's `max_deliver` would stay in the stream forever, never delivered again. So a
 * delivery whose `deliveryCount` exceeds `maxDeliver` is published to the dead-letter stream, then
 * termed (which removes it from the work queue); it is never handed out.
 *
 * Wire format of a job: the body is the JSON of `data`; header `Dynamo-Job-Id` carries the job
 * id (a UUID, the same across redeliveries; also the `Nats-Msg-Id`, so push's own retry cannot
 * store a job twice) and `Dynamo-Deadline` the deadline (epoch ms) when there is one.
 */
export {
  JOB_ID_HEADER,
  JOB_DEADLINE_HEADER,
  JETSTREAM_QUEUE_CONSUMER,
  deadLetterStreamName,
  type JetStreamDeadLetter,
  type JetStreamWorkQueueOptions,
} from './options';
export { JetStreamWorkQueue } from './queue';
