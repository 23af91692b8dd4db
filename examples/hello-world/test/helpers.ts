/** Helpers of the hello-world tests: query the frontend as the seed's curl calls do. */

export interface SeedResponse {
  worker_output: string;
  request_id: string;
}

/** POSTs to /generate accepting SSE; returns the events and their concatenated output. */
export async function generateSse(
  url: string,
  prompt: string,
  requestId?: string,
): Promise<{ status: number; events: SeedResponse[]; output: string; worker: string }> {
  const res = await fetch(`${url}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(requestId ? { prompt, request_id: requestId } : { prompt }),
  });
  const text = await res.text();
  if (res.status !== 200) return { status: res.status, events: [], output: text, worker: '' };
  const events = text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => JSON.parse(e.slice('data: '.length)) as SeedResponse);
  const output = events.map((e) => e.worker_output).join('');
  return { status: res.status, events, output, worker: output.split('_GeneratedBy_')[1] ?? '' };
}

/** POSTs to /generate for one JSON body. */
export async function generateJson(
  url: string,
  prompt: string,
  requestId?: string,
): Promise<{ status: number; body: SeedResponse }> {
  const res = await fetch(`${url}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(requestId ? { prompt, request_id: requestId } : { prompt }),
  });
  return { status: res.status, body: (await res.json()) as SeedResponse };
}

/** A unique namespace per test, so tests can share servers and run in parallel. */
export function uniqueNamespace(prefix = 'test'): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
