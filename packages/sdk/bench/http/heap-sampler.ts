/**
 * Preload (`--import`) for `alloc-http.ts`: lets the parent start and stop V8's sampling heap
 * profiler in this process over IPC, collected objects included, and answers with the bytes
 * allocated by function.
 *
 * IPC: `{type: "heap-sampling-start"}` -> `{type: "heap-sampling-started"}`;
 * `{type: "heap-sampling-stop"}` -> `{type: "heap-sampling", bytes: {function: bytes}}`.
 */
import { Session } from 'node:inspector';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const session = new Session();
session.connect();
const post = <R>(method: string, params?: object): Promise<R> =>
  new Promise((resolve, reject) => session.post(method, params as never, (e, r) => (e ? reject(e) : resolve(r as R))));

process.on('message', (m: { type?: string }) => {
  if (m?.type === 'heap-sampling-start') {
    void (async () => {
      await post('HeapProfiler.enable');
      await post('HeapProfiler.startSampling', {
        samplingInterval: 256,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      process.send?.({ type: 'heap-sampling-started' });
    })();
  } else if (m?.type === 'heap-sampling-stop') {
    void (async () => {
      const { profile } = await post<{ profile: { head: ProfileNode } }>('HeapProfiler.stopSampling');
      const bytes: Record<string, number> = {};
      const walk = (n: ProfileNode): void => {
        const cf = n.callFrame;
        const key = `${cf.functionName || '(anonymous)'}  ${cf.url.replace(/.*\/(packages|examples|node_modules)\//, '')}:${cf.lineNumber}`;
        bytes[key] = (bytes[key] ?? 0) + n.selfSize;
        for (const c of n.children) walk(c);
      };
      walk(profile.head);
      process.send?.({ type: 'heap-sampling', bytes });
    })();
  }
});
