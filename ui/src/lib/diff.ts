// Line diff (Myers' O(ND) algorithm) and its two views: unified and side by side, folded to hunks.

export type DiffOp = { kind: 'same' | 'del' | 'add'; text: string; left?: number; right?: number };

/** Past this many edits the middle is shown as all removed then all added: still correct, never slow. */
const MAX_EDITS = 4000;

export function diffLines(before: string[], after: string[]): DiffOp[] {
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start++;
  let endA = before.length;
  let endB = after.length;
  while (endA > start && endB > start && before[endA - 1] === after[endB - 1]) {
    endA--;
    endB--;
  }
  const ops: DiffOp[] = [];
  for (let i = 0; i < start; i++) ops.push({ kind: 'same', text: before[i] ?? '', left: i + 1, right: i + 1 });
  for (const op of middle(before.slice(start, endA), after.slice(start, endB))) {
    ops.push({
      kind: op.kind,
      text: op.text,
      left: op.left === undefined ? undefined : op.left + start + 1,
      right: op.right === undefined ? undefined : op.right + start + 1,
    });
  }
  for (let i = endA, j = endB; i < before.length; i++, j++) {
    ops.push({ kind: 'same', text: before[i] ?? '', left: i + 1, right: j + 1 });
  }
  return ops;
}

function middle(a: string[], b: string[]): DiffOp[] {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) return replaceAll(a, b);
  const max = Math.min(n + m, MAX_EDITS);
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  // trace[d] holds v for k in [-d-1, d+1] as it was when round d began.
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice(off - d - 1, off + d + 2));
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && (v[off + k - 1] ?? 0) < (v[off + k + 1] ?? 0));
      let x = down ? (v[off + k + 1] ?? 0) : (v[off + k - 1] ?? 0) + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(a, b, trace, d);
    }
  }
  return replaceAll(a, b);
}

function backtrack(a: string[], b: string[], trace: Int32Array[], last: number): DiffOp[] {
  const out: DiffOp[] = [];
  let x = a.length;
  let y = b.length;
  for (let d = last; d >= 0; d--) {
    const t = trace[d] ?? new Int32Array(0);
    const at = (k: number) => t[k + d + 1] ?? 0;
    const k = x - y;
    const down = k === -d || (k !== d && at(k - 1) < at(k + 1));
    const prevK = down ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : at(prevK);
    const prevY = d === 0 ? 0 : prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      out.push({ kind: 'same', text: a[x] ?? '', left: x, right: y });
    }
    if (d > 0) {
      if (down) out.push({ kind: 'add', text: b[prevY] ?? '', right: prevY });
      else out.push({ kind: 'del', text: a[prevX] ?? '', left: prevX });
    }
    x = prevX;
    y = prevY;
  }
  return out.reverse();
}

function replaceAll(a: string[], b: string[]): DiffOp[] {
  return [
    ...a.map((text, i): DiffOp => ({ kind: 'del', text, left: i })),
    ...b.map((text, i): DiffOp => ({ kind: 'add', text, right: i })),
  ];
}

export function countChanges(ops: DiffOp[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const op of ops) {
    if (op.kind === 'add') added++;
    else if (op.kind === 'del') removed++;
  }
  return { added, removed };
}

export type Hunk = { kind: 'ops'; ops: DiffOp[] } | { kind: 'skip'; count: number };

/** Keeps `context` unchanged lines around each change and folds the rest. */
export function hunks(ops: DiffOp[], context = 3): Hunk[] {
  const keep = new Uint8Array(ops.length);
  ops.forEach((op, i) => {
    if (op.kind === 'same') return;
    for (let j = Math.max(0, i - context); j <= Math.min(ops.length - 1, i + context); j++) keep[j] = 1;
  });
  const out: Hunk[] = [];
  let skipped = 0;
  let current: DiffOp[] = [];
  ops.forEach((op, i) => {
    if (keep[i]) {
      if (skipped) out.push({ kind: 'skip', count: skipped });
      skipped = 0;
      current.push(op);
    } else {
      if (current.length) out.push({ kind: 'ops', ops: current });
      current = [];
      skipped++;
    }
  });
  if (current.length) out.push({ kind: 'ops', ops: current });
  if (skipped) out.push({ kind: 'skip', count: skipped });
  return out;
}

export interface SideBySideRow {
  left?: DiffOp;
  right?: DiffOp;
}

/** Pairs each run of removed lines with the added lines that follow it. */
export function sideBySide(ops: DiffOp[]): SideBySideRow[] {
  const rows: SideBySideRow[] = [];
  let i = 0;
  while (i < ops.length) {
    const op = ops[i];
    if (!op) break;
    if (op.kind === 'same') {
      rows.push({ left: op, right: op });
      i++;
      continue;
    }
    const dels: DiffOp[] = [];
    const adds: DiffOp[] = [];
    for (let d = ops[i]; d?.kind === 'del'; d = ops[++i]) dels.push(d);
    for (let a = ops[i]; a?.kind === 'add'; a = ops[++i]) adds.push(a);
    for (let r = 0; r < Math.max(dels.length, adds.length); r++) rows.push({ left: dels[r], right: adds[r] });
  }
  return rows;
}
