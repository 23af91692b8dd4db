/**
 * `@dynamo-ts/runtime/compliance`: the jest suites every backend of the runtime passes, for a
 * third-party discovery, request plane, event plane or work queue to prove it behaves the same.
 * Call one in a jest test file with a harness that creates your backend; `jest` is an optional
 * peer dependency, needed only here.
 * @packageDocumentation
 */
export { describeDiscoveryCompliance } from './discovery';
export type { DiscoveryHarness } from './discovery';
export { describeEventPlaneCompliance } from './event-plane';
export type { EventPlaneHarness } from './event-plane';
export { describeRequestPlaneCompliance } from './request-plane';
export type { RequestPlaneHarness } from './request-plane';
export { describeWorkQueueCompliance } from './work-queue';
export type { WorkQueueHarness } from './work-queue';
export { Reader, collect, delay, eventually, rejection, uid } from './helpers';
