#!/usr/bin/env python3
"""Turns Tailscale SaaS captures into Switchboard golden cases (JSON Lines, one case per line).

The captures are the recordings headscale keeps under hscontrol/policy/v2/testdata/*_results/:
each holds a policy POSTed to a real tailnet, the node topology, the API status/error and, per
node, the packet filter, SSH policy and netmap the Tailscale control plane delivered. Only facts
are carried over (policy, nodes, delivered filters/peers/SSH/caps, error text); the format and
the harness that checks them are ours.

usage: import-captures.py <headscale checkout> <output dir>
"""
import glob
import json
import os
import re
import sys

CATEGORIES = ['acl_results', 'grant_results', 'routes_results', 'ssh_results',
              'nodeattrs_results', 'policytest_results', 'sshtest_results']


def strip_hujson(text):
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == '\\' else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith('//', i):
            j = text.find('\n', i)
            i = n if j < 0 else j
        elif text.startswith('/*', i):
            i = text.index('*/', i) + 2
            out.append(' ')
        else:
            out.append(c)
            i += 1
    return re.sub(r',(\s*[\]}])', r'\1', ''.join(out))


def nodes_of(capture):
    emails = {u['name']: u['email'] for u in capture['topology']['users']}
    nodes = []
    for name, n in sorted(capture['topology']['nodes'].items()):
        tags = n.get('tags') or []
        user = emails.get(n.get('user'), n.get('user')) if not tags and n.get('user') else None
        nodes.append({'id': name, 'user': user, 'tags': tags, 'ipv4': n.get('ipv4') or '',
                      'ipv6': n.get('ipv6') or '', 'routableIPs': n.get('routable_ips') or [],
                      'approvedRoutes': n.get('approved_routes') or []})
    return nodes


def convert(path, category, commit):
    cap = json.loads(strip_hujson(open(path).read()))
    inp = cap['input']
    policy = inp['full_policy']
    if isinstance(policy, str):
        policy = json.loads(policy) if policy.strip() else None
    case = {
        'name': cap['test_id'],
        'source': f"SaaS capture {cap['test_id']} ({cap.get('captured_at', '?')[:10]}), "
                  f"headscale {commit[:8]} hscontrol/policy/v2/testdata/{category}/{os.path.basename(path)}",
        'status': inp['api_response_code'],
    }
    body = inp.get('api_response_body') or {}
    if body.get('message'):
        case['error'] = body['message']
    case['policy'] = policy
    if cap.get('topology'):
        case['nodes'] = nodes_of(cap)
    expect = {}
    capture_nodes = (cap.get('topology') or {}).get('nodes') or {}
    for name, c in sorted((cap.get('captures') or {}).items()):
        netmap = c.get('netmap') or {}
        e = {}
        if category in ('acl_results', 'grant_results', 'routes_results'):
            e['filter'] = c.get('packet_filter_rules') or []
            e['peers'] = sorted(p['Name'].split('.')[0] for p in (netmap.get('Peers') or []))
            # Subnet routes in each route-announcing peer's AllowedIPs (exit routes excluded).
            routes = {}
            for p in netmap.get('Peers') or []:
                peer = p['Name'].split('.')[0]
                announced = (capture_nodes.get(peer) or {}).get('routable_ips') or []
                if not [r for r in announced if r not in ('0.0.0.0/0', '::/0')]:
                    continue
                routes[peer] = sorted(a for a in p.get('AllowedIPs') or []
                                      if a not in (p.get('Addresses') or []) and a not in ('0.0.0.0/0', '::/0'))
            if routes:
                e['peerRoutes'] = routes
        elif category == 'ssh_results':
            e['ssh'] = netmap.get('SSHPolicy')
        elif category == 'nodeattrs_results':
            e['capMap'] = sorted(((netmap.get('SelfNode') or {}).get('CapMap') or {}).keys())
        if e:
            expect[name] = e
    if expect and case['status'] == 200:
        case['expect'] = expect
    return case


def main():
    src, out = sys.argv[1], sys.argv[2]
    commit = os.environ.get('HEADSCALE_COMMIT', 'f20f1f127842c74dd5f6e10254307b65b1aee936')
    for category in CATEGORIES:
        files = sorted(glob.glob(f'{src}/hscontrol/policy/v2/testdata/{category}/*.hujson'))
        with open(f"{out}/{category.replace('_results', '')}.jsonl", 'w') as f:
            for path in files:
                f.write(json.dumps(convert(path, category, commit), separators=(',', ':')) + '\n')


if __name__ == '__main__':
    main()
