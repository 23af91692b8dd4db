/**
 * V8's sampling heap profiler through the inspector, counting objects the GC already collected:
 * bytes allocated by function, as `alloc.ts` (in-process) and `heap-sampler.ts` (a server under
 * `alloc-http.ts`) report them.
 */
import { Session } from 'node:inspector';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

/** A sampling run of this process's heap: {@link HeapSampling.stop} gives bytes by function. */
export class HeapSampling {
  private readonly session = new Session();

  private constructor() {
    this.session.connect();
  }

  /** Starts sampling every `intervalBytes` allocated bytes (on average). */
  static async start(intervalBytes: number): Promise<HeapSampling> {
    const h = new HeapSampling();
    await h.post('HeapProfiler.enable');
    await h.post('HeapProfiler.startSampling', {
      samplingInterval: intervalBytes,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    return h;
  }

  /** Stops sampling: bytes allocated by `function  file:line`, most first. */
  async stop(): Promise<Array<[string, number]>> {
    const { profile } = await this.post<{ profile: { head: ProfileNode } }>('HeapProfiler.stopSampling');
    this.session.disconnect();
    const bytes = new Map<string, number>();
    const walk = (n: ProfileNode): void => {
      const cf = n.callFrame;
      const key = `${cf.functionName || '(anonymous)'}  ${cf.url.replace(/.*\/(packages|examples|node_modules)\//, '')}:${cf.lineNumber}`;
      bytes.set(key, (bytes.get(key) ?? 0) + n.selfSize);
      for (const c of n.children) walk(c);
    };
    walk(profile.head);
    return [...bytes].sort((a, b) => b[1] - a[1]);
  }

  private post<R>(method: string, params?: object): Promise<R> {
    return new Promise((resolve, reject) =>
      this.session.post(method, params as never, (e, r) => (e ? reject(e) : resolve(r as R))),
    );
  }
}

/** Writes the total and the `top` functions of `bytes`, per request of `requests`. */
export function printBytesPerRequest(
  title: string,
  bytes: Array<[string, number]>,
  requests: number,
  top: number,
): void {
  const total = bytes.reduce((t, [, b]) => t + b, 0);
  process.stdout.write(`${title}: ${(total / requests).toFixed(0)} bytes allocated a request (${requests} requests)\n`);
  for (const [k, v] of bytes.slice(0, top)) process.stdout.write(`${(v / requests).toFixed(0).padStart(7)}  ${k}\n`);
}
