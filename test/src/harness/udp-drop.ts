/**
 * Drops direct UDP between client namespaces (nftables inside each namespace), so two clients can
 * only reach each other through a DERP relay. Traffic to anything else (the control server, the
 * relay, STUN) is untouched. The table lives in the namespace and goes with it.
 */
import type { TailscaleNode } from './node.js';
import { exec } from './node.js';

/** In `node`'s namespace, drops UDP to and from every address in `peers`; returns the ruleset text. */
export async function dropUdpWith(node: TailscaleNode, peers: readonly string[]): Promise<string> {
  const set = peers.join(', ');
  const rules = [
    'table inet sb_udp_drop {',
    '  chain out { type filter hook output priority 0; policy accept;',
    `    ip daddr { ${set} } meta l4proto udp counter drop`,
    '  }',
    '  chain in { type filter hook input priority 0; policy accept;',
    `    ip saddr { ${set} } meta l4proto udp counter drop`,
    '  }',
    '}',
  ].join('\n');
  await exec(node, ['nft', '-f', '-'], { input: rules });
  return (await exec(node, ['nft', 'list', 'table', 'inet', 'sb_udp_drop'])).stdout;
}

/** Packets the drop rules have dropped in `node`'s namespace (both directions). */
export async function droppedUdp(node: TailscaleNode): Promise<number> {
  const out = (await exec(node, ['nft', 'list', 'table', 'inet', 'sb_udp_drop'])).stdout;
  let n = 0;
  for (const m of out.matchAll(/counter packets (\d+)/g)) n += Number(m[1]);
  return n;
}
