#!/usr/bin/env node
/**
 * Registration micro-benchmark: key-registry on a scratch Postgres database, driven over the bus
 * (NATS by default, `--bus=inproc` for the in-process bus), with identity and policy-compiler
 * running beside it on the same bus (they own the users and the policy key-registry needs).
 * Registers `--n` nodes (default 2000) with `--concurrency` (default 16) in flight, half of them
 * user nodes and half tagged nodes, every one advertising a subnet route the policy auto-approves.
 * Prints one JSON line: registrations/s, p50/p99 latency, and the RPCs seen per subject.
 *
 *   node bench/dist/src/registration/registration-bench.js [--n=2000] [--concurrency=16] [--bus=nats|inproc]
 */
import { randomBytes } from 'node:crypto';
import { connectNatsBus, createInProcessBus, type Bus } from '@switchboard/bus';
import { openDb } from '@switchboard/db';
import { callRpc, identity, keyRegistry, policy, type RegisterInput } from '@switchboard/contracts';
import { IdentityRuntime } from '@switchboard/identity';
import { KeyRegistryRuntime, keyRegistryConfigSchema } from '@switchboard/key-registry';
import { PolicyCompilerRuntime } from '@switchboard/policy-compiler';
import { countingBus, NATS_URL, scratchDatabase, testLogger } from '@switchboard/testing';

const POLICY = `{
  "tagOwners": { "tag:bench": ["bench@"] },
  "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ],
  "autoApprovers": { "routes": { "10.0.0.0/8": ["bench@", "tag:bench"] } },
}`;

function arg(name: string, fallback: string): string {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
}

const hex = (): string => randomBytes(32).toString('hex');

async function main(): Promise<void> {
  const n = Number(arg('n', '2000'));
  const concurrency = Number(arg('concurrency', '16'));
  const busKind = arg('bus', 'nats');
  const logger = testLogger('registration-bench');
  const scratch = await scratchDatabase('sbbench');
  const db = await openDb({ url: scratch.url, logger });
  const raw: Bus =
    busKind === 'nats'
      ? // The shared default stream (it must hold `events.>`); this run's outbox origin keeps its msgIds apart.
        await connectNatsBus({ servers: NATS_URL, name: 'registration-bench', logger })
      : createInProcessBus({ logger });
  const bus = countingBus(raw);
  const ids = new IdentityRuntime({ db, bus, logger });
  const pol = new PolicyCompilerRuntime({ db, bus, logger });
  const kr = new KeyRegistryRuntime({ db, bus, logger, config: keyRegistryConfigSchema.parse({}) });
  try {
    await ids.start();
    await pol.start();
    await kr.start();
    const { user } = await callRpc(bus, identity.CreateUser, { name: 'bench' });
    await callRpc(bus, policy.SetPolicy, { text: POLICY, author: 'bench' });
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const mk = async (tags: string[]) =>
      (
        await callRpc(bus, keyRegistry.CreatePreAuthKey, {
          userId: user.id,
          reusable: true,
          ephemeral: false,
          tags,
          expiresAt,
        })
      ).key;
    const userKey = await mk([]);
    const tagKey = await mk(['tag:bench']);
    // Warm up (connections, JIT, caches), then measure with fresh counters.
    const input = (i: number): RegisterInput => ({
      machineKey: `mkey:${hex()}`,
      nodeKey: `nodekey:${hex()}`,
      oldNodeKey: null,
      authKey: i % 2 === 0 ? userKey : tagKey,
      expiry: null,
      followup: '',
      capVersion: 130,
      ephemeral: false,
      hostinfo: {
        Hostname: `bench-${i}`,
        OS: 'linux',
        RoutableIPs: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
      },
    });
    for (let i = 0; i < 50; i++) await callRpc(bus, keyRegistry.Register, input(1_000_000 + i));
    bus.counts.clear();
    const lat: number[] = [];
    let next = 0;
    let unapproved = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          const i = next++;
          const s = performance.now();
          const r = await callRpc(bus, keyRegistry.Register, input(i), { timeoutMs: 60_000 });
          lat.push(performance.now() - s);
          if (r.kind !== 'ok') throw new Error(`registration ${i} failed: ${JSON.stringify(r)}`);
          if (r.node.approvedRoutes.length !== 1) unapproved++;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    const q = (p: number): number => Math.round((lat[Math.floor(p * (lat.length - 1))] ?? 0) * 10) / 10;
    process.stdout.write(
      JSON.stringify({
        bus: busKind,
        registrations: n,
        concurrency,
        register_per_s: Math.round(n / secs),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        unapproved,
        rpcs: Object.fromEntries(bus.counts),
      }) + '\n',
    );
  } finally {
    await kr.stop();
    await pol.stop();
    await ids.stop();
    await raw.close();
    await db.close();
    await scratch.drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
