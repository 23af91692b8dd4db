/**
 * `@dynamo-ts/runtime/nats`: the NATS backends (request plane, event plane, JetStream work
 * queue) and the shared connection. A subpath so that the root entry does not load nats.js.
 * @packageDocumentation
 */
export { NatsRequestPlane } from './transport/nats/index';
export type { NatsRequestPlaneOptions } from './transport/nats/index';
export { NatsEventPlane } from './events/nats';
export type { NatsEventPlaneOptions } from './events/nats';
export {
  JETSTREAM_QUEUE_CONSUMER,
  JOB_DEADLINE_HEADER,
  JOB_ID_HEADER,
  JetStreamWorkQueue,
  deadLetterStreamName,
} from './queue/jetstream';
export type { JetStreamDeadLetter, JetStreamWorkQueueOptions } from './queue/jetstream';
export { connectNats } from './nats-connection';
export { compileNatsOptions, readCredsFile } from './nats-connection';
export type { CompiledNatsOptions, ConnectNatsOptions, NatsCredentials } from './nats-connection';
