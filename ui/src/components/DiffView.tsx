// A diff of manifests, unified or side by side, folded to the changed lines and some context.
import { useMemo, useState } from 'preact/hooks';
import { countChanges, diffLines, hunks, sideBySide, type DiffOp, type Hunk } from '../lib/diff';

export interface DiffItem {
  id: string;
  title: string;
  before: string;
  after: string;
}

export type DiffMode = 'unified' | 'split';

export function DiffModeToggle({ mode, onChange }: { mode: DiffMode; onChange: (m: DiffMode) => void }) {
  return (
    <div class="segmented" role="radiogroup" aria-label="Diff layout">
      {(['unified', 'split'] as const).map((m) => (
        <button key={m} type="button" role="radio" aria-checked={mode === m} class={mode === m ? 'active' : ''} onClick={() => onChange(m)}>
          {m === 'unified' ? 'Unified' : 'Side by side'}
        </button>
      ))}
    </div>
  );
}

export function DiffList({ items, emptyText }: { items: DiffItem[]; emptyText: string }) {
  const [mode, setMode] = useState<DiffMode>('unified');
  const [all, setAll] = useState(false);
  const diffs = useMemo(
    () =>
      items.map((item) => {
        const ops = diffLines(split(item.before), split(item.after));
        return { item, ops, changes: countChanges(ops) };
      }),
    [items],
  );
  const changed = diffs.filter((d) => d.changes.added + d.changes.removed > 0);
  const visible = all ? diffs : changed;
  return (
    <div class="diff-list" data-testid="diff">
      <div class="diff-toolbar">
        <DiffModeToggle mode={mode} onChange={setMode} />
        <label class="check">
          <input type="checkbox" checked={all} onChange={() => setAll(!all)} /> Show unchanged resources
        </label>
        <span class="muted">
          {changed.length} of {diffs.length} resources differ
        </span>
      </div>
      {visible.length === 0 ? <p class="empty">{emptyText}</p> : null}
      {visible.map(({ item, ops, changes }) => (
        <section key={item.id} class="diff-file" aria-label={`Diff of ${item.title}`}>
          <h3 class="diff-title">
            {item.title}
            <span class="diff-stat">
              <span class="add">+{changes.added}</span> <span class="del">−{changes.removed}</span>
            </span>
          </h3>
          <DiffBody ops={ops} mode={mode} />
        </section>
      ))}
    </div>
  );
}

function split(text: string): string[] {
  return text ? text.split('\n') : [];
}

export function DiffBody({ ops, mode }: { ops: DiffOp[]; mode: DiffMode }) {
  const [full, setFull] = useState(false);
  const parts = useMemo((): Hunk[] => (full ? [{ kind: 'ops', ops }] : hunks(ops)), [ops, full]);
  if (ops.length === 0) return <p class="empty">Both sides are empty.</p>;
  return (
    <div class={`diff diff-${mode}`} role="table" aria-label={mode === 'unified' ? 'Unified diff' : 'Side-by-side diff'}>
      {parts.map((h, i) =>
        h.kind === 'skip' ? (
          <Skip key={i} count={h.count} onExpand={() => setFull(true)} />
        ) : mode === 'unified' ? (
          <UnifiedHunk key={i} ops={h.ops} />
        ) : (
          <SplitHunk key={i} ops={h.ops} />
        ),
      )}
    </div>
  );
}

function Skip({ count, onExpand }: { count: number; onExpand: () => void }) {
  return (
    <div class="diff-skip" role="row">
      <span role="cell">
        <button type="button" class="link-button" onClick={onExpand}>
          ⋯ {count} unchanged line{count === 1 ? '' : 's'}: show the whole manifest
        </button>
      </span>
    </div>
  );
}

const SIGN = { same: ' ', add: '+', del: '−' } as const;

function UnifiedHunk({ ops }: { ops: DiffOp[] }) {
  return (
    <>
      {ops.map((op, i) => (
        <div key={i} class={`diff-line ${op.kind}`} role="row">
          <span class="ln" role="cell">
            {op.left ?? ''}
          </span>
          <span class="ln" role="cell">
            {op.right ?? ''}
          </span>
          <span class="code" role="cell">
            <span class="sign" aria-label={op.kind === 'add' ? 'added' : op.kind === 'del' ? 'removed' : undefined}>
              {SIGN[op.kind]}
            </span>
            {op.text}
          </span>
        </div>
      ))}
    </>
  );
}

function SplitHunk({ ops }: { ops: DiffOp[] }) {
  return (
    <>
      {sideBySide(ops).map((row, i) => (
        <div key={i} class="diff-line split" role="row">
          <span class="ln" role="cell">
            {row.left?.left ?? ''}
          </span>
          <span class={`code ${row.left ? (row.left.kind === 'same' ? 'same' : 'del') : 'blank'}`} role="cell">
            {row.left?.text ?? ''}
          </span>
          <span class="ln" role="cell">
            {row.right?.right ?? ''}
          </span>
          <span class={`code ${row.right ? (row.right.kind === 'same' ? 'same' : 'add') : 'blank'}`} role="cell">
            {row.right?.text ?? ''}
          </span>
        </div>
      ))}
    </>
  );
}
