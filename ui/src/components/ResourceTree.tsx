// The resource tree drawn left to right: edges in SVG, nodes as buttons (so Tab and Enter work).
import { useMemo } from 'preact/hooks';
import type { Application, ResourceTree as Tree } from '../api/types';
import { NODE_HEIGHT, NODE_WIDTH, buildGraph, groupParent, kindShort, type GraphNode } from '../lib/tree';
import { HealthStatusIcon, SyncStatusIcon } from './Status';

interface Props {
  app: Application;
  tree: Tree | undefined;
  expanded: ReadonlySet<string>;
  selected?: string;
  onSelect: (node: GraphNode) => void;
  onToggleGroup: (groupId: string) => void;
}

export function ResourceTree({ app, tree, expanded, selected, onSelect, onToggleGroup }: Props) {
  const graph = useMemo(() => buildGraph(app, tree, expanded), [app, tree, expanded]);
  const parents = useMemo(() => {
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    const out = new Map<string, string[]>();
    for (const e of graph.edges) {
      const from = byId.get(e.from);
      if (from) out.set(e.to, [...(out.get(e.to) ?? []), `${from.kind}/${from.name}`]);
    }
    return out;
  }, [graph]);
  const unfolded = Array.from(expanded).filter((id) => graph.nodes.some((n) => n.id === groupParent(id)));

  return (
    <div class="tree-scroller" data-testid="resource-tree">
      {unfolded.length ? (
        <div class="tree-note">
          {unfolded.map((id) => (
            <button key={id} type="button" class="link-button" onClick={() => onToggleGroup(id)}>
              Fold the {id.endsWith('#pods') ? 'pods' : 'empty ReplicaSets'} of{' '}
              {graph.nodes.find((n) => n.id === groupParent(id))?.name}
            </button>
          ))}
        </div>
      ) : null}
      <div class="tree-canvas" style={{ width: `${graph.width}px`, height: `${graph.height}px` }}>
        <svg class="tree-edges" width={graph.width} height={graph.height} aria-hidden="true">
          {graph.edges.map((e) => {
            const [a, b] = e.points;
            if (!a || !b) return null;
            const mid = (a.x + b.x) / 2;
            return <path key={`${e.from}>${e.to}`} d={`M${a.x},${a.y} C${mid},${a.y} ${mid},${b.y} ${b.x},${b.y}`} />;
          })}
        </svg>
        <ul class="tree-nodes" aria-label="Resources">
          {graph.nodes.map((n) => (
            <li key={n.id} style={{ left: `${n.x}px`, top: `${n.y}px`, width: `${NODE_WIDTH}px`, height: `${NODE_HEIGHT}px` }}>
              <TreeNode
                node={n}
                parents={parents.get(n.id) ?? []}
                selected={selected === n.id}
                onClick={() => {
                  if (n.members) onToggleGroup(n.id);
                  else onSelect(n);
                }}
              />
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}

function TreeNode({
  node,
  parents,
  selected,
  onClick,
}: {
  node: GraphNode;
  parents: string[];
  selected: boolean;
  onClick: () => void;
}) {
  const info = node.info.map((i) => (i.name === 'Ready' || i.name === 'Status Reason' ? i.value : `${i.name}: ${i.value}`));
  const label = node.members
    ? `${node.name}, ${node.health ?? 'Unknown'}: show each one`
    : `${node.kind} ${node.name}${node.health ? `, ${node.health}` : ''}${node.sync ? `, ${node.sync}` : ''}${info.length ? `, ${info.join(', ')}` : ''}`;
  return (
    <button
      type="button"
      class={`tree-node${node.root ? ' root' : ''}${node.members ? ' group' : ''}${selected ? ' selected' : ''}${node.requiresPruning ? ' prune' : ''}`}
      data-kind={node.kind}
      data-name={node.name}
      data-parents={parents.join(',')}
      aria-label={label}
      aria-pressed={node.members ? undefined : selected}
      onClick={onClick}
    >
      <span class={`kind-badge kind-${node.kind}`} aria-hidden="true">
        {kindShort(node.kind)}
      </span>
      <span class="tree-node-text">
        <span class="tree-node-name" title={node.name}>
          {node.name}
        </span>
        <span class="tree-node-meta">
          {node.health ? <HealthStatusIcon status={node.health} size={14} /> : null}
          {node.sync ? <SyncStatusIcon status={node.sync} size={14} /> : null}
          <span class="tree-node-kind">{node.kind}</span>
          {info.length ? <span class="tree-node-info">{info.join(' · ')}</span> : null}
          {node.members ? <HealthCounts nodes={node.members} /> : null}
        </span>
      </span>
    </button>
  );
}

function HealthCounts({ nodes }: { nodes: GraphNode[] }) {
  const counts = new Map<string, number>();
  for (const p of nodes) counts.set(p.health ?? 'Unknown', (counts.get(p.health ?? 'Unknown') ?? 0) + 1);
  return (
    <span class="tree-node-info">
      {Array.from(counts)
        .map(([h, c]) => `${c} ${h}`)
        .join(' · ')}
    </span>
  );
}
