import { checkAnswer, failureSummary, parseSse, recoveryMs, tally, type RequestOutcome } from './harness';
import { formatFaultTable, type FaultRow } from './report';

/** The harness's own judgement of answers and its figures (no processes). */
describe('fault harness', () => {
  const workers = ['node-a', 'node-b'];

  it('accepts exactly prompt + _GeneratedBy_ + one of the workers', () => {
    expect(checkAnswer('Tell me a joke', 'Tell me a joke_GeneratedBy_node-b', workers)).toEqual({
      ok: true,
      worker: 'node-b',
      duplicated: false,
      missing: false,
    });
    expect(checkAnswer('Tell me a joke', 'Tell me a joke_GeneratedBy_node-c', workers).ok).toBe(false);
  });

  it('calls repeated pieces duplicated and short answers missing', () => {
    // A token sent again after a migration.
    expect(checkAnswer('Tell me a joke', 'Tell me a joke joke_GeneratedBy_node-a', workers)).toMatchObject({
      ok: false,
      duplicated: true,
    });
    // Two suffixes (both workers finished the stream).
    expect(
      checkAnswer('Tell me a joke', 'Tell me a joke_GeneratedBy_node-a_GeneratedBy_node-b', workers),
    ).toMatchObject({ ok: false, duplicated: true });
    // A gap, and a stream cut before its suffix.
    expect(checkAnswer('Tell me a joke', 'Tell me joke_GeneratedBy_node-a', workers)).toMatchObject({
      ok: false,
      duplicated: false,
      missing: true,
    });
    expect(checkAnswer('Tell me a joke', 'Tell me a', workers)).toMatchObject({ ok: false, missing: true });
  });

  it('parses SSE bodies, named events included', () => {
    const body =
      'data: {"worker_output":"Tell","request_id":"r"}\n\n' + 'event: error\ndata: {"error":{"code":"timeout"}}\n\n';
    expect(parseSse(body)).toEqual([
      { event: 'message', data: '{"worker_output":"Tell","request_id":"r"}' },
      { event: 'error', data: '{"error":{"code":"timeout"}}' },
    ]);
  });

  const outcome = (index: number, sentAt: number, kind: RequestOutcome['kind'], status = 200): RequestOutcome => ({
    index,
    requestId: `r-${index}`,
    prompt: 'p',
    sentAt,
    doneAt: sentAt + 50,
    status,
    kind,
    text: '',
    duplicated: false,
    foreignEvents: 0,
    ...(kind === 'ok' ? {} : { error: `{"error":{"code":"${status === 503 ? 'unavailable' : 'timeout'}"}}` }),
  });

  it('measures recovery from the fault to the final run of successes', () => {
    const run = [
      outcome(0, 1000, 'ok'),
      outcome(1, 2000, 'lost', 504),
      outcome(2, 3000, 'unavailable', 503),
      outcome(3, 4000, 'ok'),
      outcome(4, 5000, 'ok'),
    ];
    expect(recoveryMs(run, 2500)).toBe(1500);
    // Failures all sent before the fault point: nothing to recover from after it.
    expect(recoveryMs(run, 3500)).toBe(0);
    expect(recoveryMs([...run, outcome(5, 6000, 'lost', 504)], 2500)).toBeUndefined();
    expect(tally(run)).toEqual({ sent: 5, ok: 3, lost: 1, unavailable: 1, corrupted: 0, duplicated: 0 });
    expect(failureSummary(run)).toBe('504 timeout x1, 503 unavailable x1');
  });

  it('formats the table with one line per case', () => {
    const row: FaultRow = {
      case: '1 kill -9',
      passed: true,
      sent: 100,
      ok: 100,
      lost: 0,
      unavailable: 0,
      corrupted: 0,
      duplicated: 0,
      recovery_ms: 0,
      notes: '9 migrated',
    };
    const lines = formatFaultTable([row, { ...row, case: '3 nats', passed: false, recovery_ms: null }]).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(
      /^\| case +\| result \| sent \| +ok \| lost \| 503 \| corrupted \| duplicated \| recovery \| notes +\|$/,
    );
    expect(lines[2]).toMatch(/^\| 1 kill -9 \| pass +\| +100 \| +100 \| +0 \|.*\| +0\.00 s \| 9 migrated \|$/);
    expect(lines[3]).toMatch(/^\| 3 nats +\| FAIL +\|.*\| +- \| 9 migrated \|$/);
  });
});
