/**
 * A small unified line diff (pure) for policy history: longest-common-subsequence over lines, with
 * a few lines of context. Large inputs fall back to a one-line summary to bound the cost.
 */
const MAX_CELLS = 4_000_000;

export function lineDiff(before: string, after: string, context = 2): string {
  const a = before.length ? before.split('\n') : [];
  const b = after.length ? after.split('\n') : [];
  if (a.length * b.length > MAX_CELLS)
    return `@@ policy replaced: ${a.length} lines -> ${b.length} lines @@\n`;
  const n = a.length;
  const m = b.length;
  // lcs[i][j] = LCS length of a[i..] and b[j..], flattened.
  const lcs = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i * (m + 1) + j] =
        a[i] === b[j]
          ? lcs[(i + 1) * (m + 1) + j + 1]! + 1
          : Math.max(lcs[(i + 1) * (m + 1) + j]!, lcs[i * (m + 1) + j + 1]!);
  const ops: { t: ' ' | '-' | '+'; line: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ t: ' ', line: a[i]! });
      i++;
      j++;
    } else if (j < m && (i >= n || lcs[i * (m + 1) + j + 1]! > lcs[(i + 1) * (m + 1) + j]!)) {
      ops.push({ t: '+', line: b[j]! });
      j++;
    } else {
      ops.push({ t: '-', line: a[i]! });
      i++;
    }
  }
  const changed = ops.map((o) => o.t !== ' ');
  if (!changed.some(Boolean)) return '';
  const keep = ops.map((_, k) => {
    for (let d = -context; d <= context; d++) if (changed[k + d]) return true;
    return false;
  });
  const out: string[] = [];
  let lineA = 1;
  let lineB = 1;
  let inHunk = false;
  for (let k = 0; k < ops.length; k++) {
    const o = ops[k]!;
    if (keep[k]) {
      if (!inHunk) out.push(`@@ -${lineA} +${lineB} @@`);
      inHunk = true;
      out.push(`${o.t}${o.line}`);
    } else inHunk = false;
    if (o.t !== '+') lineA++;
    if (o.t !== '-') lineB++;
  }
  return out.join('\n') + '\n';
}
