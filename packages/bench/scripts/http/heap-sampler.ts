/**
 * Preload (`--import`) for `alloc-http.ts`: lets the parent start and stop V8's sampling heap
 * profiler in this process over IPC (`heap-sampling.ts`), and answers with the bytes allocated by
 * function.
 *
 * IPC: `{type: "heap-sampling-start"}` -> `{type: "heap-sampling-started"}`;
 * `{type: "heap-sampling-stop"}` -> `{type: "heap-sampling", bytes: [[function, bytes], ...]}`.
 */
import { HeapSampling } from './heap-sampling';

let sampling: Promise<HeapSampling> | undefined;

process.on('message', (m: { type?: string }) => {
  if (m?.type === 'heap-sampling-start') {
    sampling = HeapSampling.start(256);
    void sampling.then(() => process.send?.({ type: 'heap-sampling-started' }));
  } else if (m?.type === 'heap-sampling-stop' && sampling) {
    void sampling.then(async (h) => process.send?.({ type: 'heap-sampling', bytes: await h.stop() }));
    sampling = undefined;
  }
});
