/**
 * Clients of clustered infrastructure: EtcdDiscovery given every member of a 3-member etcd
 * cluster, and a NATS connection given every server of a 3-node cluster, each losing a member
 * (SIGKILL) and getting it back. Also exercises the cluster helpers of `@dynamo-ts/runtime/testing`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../src/nats-connection';
import { EtcdDiscovery } from '../../src/discovery/etcd';
import { startEtcdCluster, startNatsCluster, type EtcdCluster, type NatsCluster } from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import { delay, uid } from '@dynamo-ts/runtime/compliance';

jest.setTimeout(60_000);

describeWithBinaries(['etcd'], 'EtcdDiscovery on a 3-member etcd cluster', () => {
  let cluster: EtcdCluster;
  beforeAll(async () => {
    cluster = await startEtcdCluster(3);
  });
  afterAll(async () => {
    await cluster?.dispose();
  });

  it('keeps every call and its lease while one member, then the leader, is killed', async () => {
    const d = await EtcdDiscovery.connect({ endpoints: cluster.urls, leaseTtlMs: 2000 });
    try {
      const key = `test/${uid()}/instance`;
      await d.put(key, 'here');
      const leader = await cluster.leader();
      expect(leader).toBeDefined();
      const follower = cluster.members.find((m) => m !== leader)!;

      // One member down: every call still succeeds (it moves to a member that answers).
      await follower.stop({ kill: true });
      const answers: Array<string | undefined> = [];
      for (let i = 0; i < 30; i++) answers.push(await d.get(key));
      expect(answers).toEqual(Array(30).fill('here'));
      // Longer than the 2 s TTL: the keep-alives found a live member, the leased key is still there.
      await delay(3000);
      expect(await d.get(key)).toBe('here');

      // Back, then the leader goes: an election, and the lease survives it.
      await follower.start();
      await cluster.waitForHealthy();
      await leader!.stop({ kill: true });
      await cluster.waitForHealthy();
      expect((await cluster.leader()) ?? leader).not.toBe(leader);
      await delay(3000);
      expect(await d.get(key)).toBe('here');
      await d.put(`${key}-2`, 'also');
      expect(await d.getPrefix(key)).toHaveLength(2);

      await leader!.start();
      await cluster.waitForHealthy();
      expect(cluster.members.every((m) => m.running)).toBe(true);
    } finally {
      await d.close();
    }
  });
});

/** Asks `echo` until someone answers (at most 50 tries of 200 ms); '' if nobody did. */
async function answered(nc: NatsConnection, text: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const answer = await nc.request('echo', text, { timeout: 200 }).then(
      (m) => m.string(),
      () => '',
    );
    if (answer) return answer;
    await new Promise((r) => setTimeout(r, 20));
  }
  return '';
}

describeWithBinaries(['nats-server'], 'NATS connection to a 3-node cluster', () => {
  let cluster: NatsCluster;
  beforeAll(async () => {
    cluster = await startNatsCluster(3, { jetstream: false });
  });
  afterAll(async () => {
    await cluster?.dispose();
  });

  it('moves to another server when its server is killed, and messages cross the routes', async () => {
    // b stays on the first server; a starts on one of the other two, whose kill it must survive.
    const b = await connectNats({ servers: [cluster.urls[0]!] });
    const a = await connectNats({
      servers: cluster.urls.slice(1),
      reconnectTimeWaitMs: 100,
      reconnectJitterMs: 50,
    });
    try {
      const sub = b.subscribe('echo');
      void (async () => {
        for await (const m of sub) m.respond(m.data);
      })();
      await b.flush();
      // b's interest reaches a's server over the routes a moment after b's own server has it.
      expect(await answered(a, 'before')).toBe('before');

      const victim = cluster.memberByAddress(a.getServer());
      expect(victim).toBeDefined();
      expect(victim).not.toBe(cluster.members[0]);
      await victim!.stop({ kill: true });
      expect(await answered(a, 'after')).toBe('after');
      expect(cluster.memberByAddress(a.getServer())).not.toBe(victim);

      await victim!.start();
      await cluster.waitForHealthy();
      expect(cluster.members.every((m) => m.running)).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
