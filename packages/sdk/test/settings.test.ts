import { settingsFromEnv } from '@dynamo-ts/sdk';

describe('settingsFromEnv', () => {
  it('defaults to the embedded mode', () => {
    const s = settingsFromEnv({});
    expect(s.mode).toBe('embedded');
    expect(s.namespace).toBe('dynamo-demo');
    expect(s.port).toBe(8000);
    expect(s.leaseTtlMs).toBe(10000);
    expect(s.metricsPort).toBeUndefined();
    expect(s.queueReplicas).toBe(1);
  });

  it('reads the work-queue stream replicas', () => {
    expect(settingsFromEnv({ DYNAMO_QUEUE_REPLICAS: '3' }).queueReplicas).toBe(3);
    expect(() => settingsFromEnv({ DYNAMO_QUEUE_REPLICAS: '0' })).toThrow(/DYNAMO_QUEUE_REPLICAS/);
  });

  it('keeps in-process calls off NATS unless DYNAMO_LOCAL_CALLS=0', () => {
    expect(settingsFromEnv({}).localCalls).toBe(true);
    expect(settingsFromEnv({ DYNAMO_LOCAL_CALLS: '1' }).localCalls).toBe(true);
    expect(settingsFromEnv({ DYNAMO_LOCAL_CALLS: '0' }).localCalls).toBe(false);
    expect(() => settingsFromEnv({ DYNAMO_LOCAL_CALLS: 'no' })).toThrow(/DYNAMO_LOCAL_CALLS/);
  });

  it('reads the metrics server port and host', () => {
    const s = settingsFromEnv({ DYNAMO_METRICS_PORT: '9091', DYNAMO_METRICS_HOST: '127.0.0.1' });
    expect(s.metricsPort).toBe(9091);
    expect(s.metricsHost).toBe('127.0.0.1');
    expect(() => settingsFromEnv({ DYNAMO_METRICS_PORT: '99999' })).toThrow(/DYNAMO_METRICS_PORT must be at most/);
    expect(() => settingsFromEnv({ DYNAMO_METRICS_PORT: 'x' })).toThrow(/DYNAMO_METRICS_PORT/);
  });

  it('selects distributed mode when both NATS_SERVER and ETCD_ENDPOINTS are set', () => {
    const s = settingsFromEnv({
      NATS_SERVER: 'nats://127.0.0.1:4222',
      ETCD_ENDPOINTS: 'http://127.0.0.1:2379,http://127.0.0.1:2380',
      DYNAMO_WORKER_NAME: 'node1',
      DYNAMO_LEASE_TTL: '3',
    });
    expect(s.mode).toBe('distributed');
    expect(s.etcdEndpoints).toEqual(['http://127.0.0.1:2379', 'http://127.0.0.1:2380']);
    expect(s.workerName).toBe('node1');
    expect(s.leaseTtlMs).toBe(3000);
  });

  it('names the missing variable when only one of them is set', () => {
    expect(() => settingsFromEnv({ NATS_SERVER: 'nats://127.0.0.1:4222' })).toThrow(
      /NATS_SERVER is set but ETCD_ENDPOINTS is not/,
    );
    expect(() => settingsFromEnv({ ETCD_ENDPOINTS: 'http://127.0.0.1:2379' })).toThrow(
      /ETCD_ENDPOINTS is set but NATS_SERVER is not/,
    );
  });

  it('names bad variables', () => {
    expect(() => settingsFromEnv({ DYNAMO_PORT: 'eighty' })).toThrow(/DYNAMO_PORT/);
    expect(() => settingsFromEnv({ DYNAMO_PORT: '70000' })).toThrow(/DYNAMO_PORT must be at most 65535/);
    expect(() => settingsFromEnv({ DYNAMO_NAMESPACE: 'a b' })).toThrow(/DYNAMO_NAMESPACE/);
    expect(() => settingsFromEnv({ DYNAMO_LOG_LEVEL: 'loud' })).toThrow(/DYNAMO_LOG_LEVEL/);
    expect(() => settingsFromEnv({ DYNAMO_LEASE_TTL: '0.5' })).toThrow(/DYNAMO_LEASE_TTL must be between 1 and 3600/);
  });

  it('reads the overload status of the frontend', () => {
    expect(settingsFromEnv({}).overloadStatusCode).toBeUndefined();
    expect(settingsFromEnv({ DYN_HTTP_OVERLOAD_STATUS_CODE: '503' }).overloadStatusCode).toBe(503);
    expect(() => settingsFromEnv({ DYN_HTTP_OVERLOAD_STATUS_CODE: '500' })).toThrow(/DYN_HTTP_OVERLOAD_STATUS_CODE/);
  });

  it('rejects values the implementation cannot honour, naming the variable', () => {
    // Once a busy loop of keep-alives (the keep-alive timer overflowed).
    expect(() => settingsFromEnv({ DYNAMO_LEASE_TTL: '10000000' })).toThrow(
      /DYNAMO_LEASE_TTL must be between 1 and 3600 seconds \(got 10000000\)/,
    );
    expect(settingsFromEnv({ DYNAMO_LEASE_TTL: '3600' }).leaseTtlMs).toBe(3_600_000);
    // Once NATS errors late that did not name it.
    expect(() => settingsFromEnv({ DYNAMO_NAMESPACE: 'n'.repeat(65) })).toThrow(/DYNAMO_NAMESPACE/);
    expect(settingsFromEnv({ DYNAMO_NAMESPACE: 'n'.repeat(64) }).namespace).toHaveLength(64);
    expect(() => settingsFromEnv({ DYNAMO_WORKER_NAME: 'w\u0001x' })).toThrow(/DYNAMO_WORKER_NAME/);
    expect(() => settingsFromEnv({ DYNAMO_WORKER_NAME: 'w'.repeat(129) })).toThrow(/DYNAMO_WORKER_NAME/);
    expect(settingsFromEnv({ DYNAMO_WORKER_NAME: 'node <|endoftext|> é' }).workerName).toBe('node <|endoftext|> é');
  });
});
