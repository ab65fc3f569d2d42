// The resource tree as a graph: the Application, its resources, what they own; many Pods under one parent
// fold into one "N pods" node; dagre lays it out left to right.
import dagre from '@dagrejs/dagre';
import type {
  Application,
  HealthStatusCode,
  ResourceNode,
  ResourceRef,
  ResourceStatus,
  ResourceTree,
  SyncStatusCode,
} from '../api/types';

export interface GraphNode {
  id: string;
  kind: string;
  group: string;
  /** The API version of a node from the live tree (v1 for Pods, v1 of apps for ReplicaSets). */
  version?: string;
  name: string;
  namespace: string;
  uid?: string;
  health?: HealthStatusCode;
  healthMessage?: string;
  sync?: SyncStatusCode;
  requiresPruning?: boolean;
  info: { name: string; value: string }[];
  images: string[];
  createdAt?: string;
  /** In the app's status.resources: has a desired and a live manifest. */
  managed: boolean;
  root?: boolean;
  /** A folded group (many Pods, ReplicaSets without pods): what it stands for. */
  members?: GraphNode[];
  x: number;
  y: number;
}

export interface GraphEdge {
  from: string;
  to: string;
  points: { x: number; y: number }[];
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  width: number;
  height: number;
}

export const NODE_WIDTH = 280;
export const NODE_HEIGHT = 64;
/** More Pods than this under one parent fold into a group. */
export const POD_GROUP_THRESHOLD = 5;

/** The groups a parent's leaf children fold into: what is in them and when they fold. */
const FOLDS = [
  { suffix: 'pods', kind: 'Pod', min: POD_GROUP_THRESHOLD + 1, label: (n: number) => `${n} pods` },
  // Old revisions of a Deployment: kept by revisionHistoryLimit, empty, and in the way.
  { suffix: 'rs', kind: 'ReplicaSet', min: 2, label: (n: number) => `${n} empty ReplicaSets` },
];

/** The group id a fold gets under a parent; `expanded` holds these. */
export function groupParent(groupId: string): string {
  return groupId.slice(0, groupId.lastIndexOf('#'));
}

/** Worse health wins when folding: gitops-engine's order. */
const HEALTH_RANK: Record<HealthStatusCode, number> = {
  Healthy: 0,
  Suspended: 1,
  Progressing: 2,
  Missing: 3,
  Degraded: 4,
  Unknown: 5,
};

export function worstHealth(list: (HealthStatusCode | undefined)[]): HealthStatusCode | undefined {
  let worst: HealthStatusCode | undefined;
  for (const h of list) if (h && (worst === undefined || HEALTH_RANK[h] > HEALTH_RANK[worst])) worst = h;
  return worst;
}

export function resourceKey(r: { group?: string; kind: string; namespace?: string; name: string }): string {
  return `${r.group ?? ''}/${r.kind}/${r.namespace ?? ''}/${r.name}`;
}

const KIND_ORDER = [
  'Namespace',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'PersistentVolumeClaim',
  'Role',
  'RoleBinding',
  'ClusterRole',
  'ClusterRoleBinding',
  'Service',
  'Ingress',
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'CronJob',
  'Job',
  'ReplicaSet',
  'Pod',
];

function kindRank(kind: string): number {
  const i = KIND_ORDER.indexOf(kind);
  return i < 0 ? KIND_ORDER.length : i;
}

function compareNodes(a: GraphNode, b: GraphNode): number {
  return kindRank(a.kind) - kindRank(b.kind) || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name);
}

function fromResourceNode(n: ResourceNode, status: ResourceStatus | undefined): GraphNode {
  return {
    id: n.uid ?? resourceKey(n),
    kind: n.kind,
    group: n.group ?? '',
    version: n.version,
    name: n.name,
    namespace: n.namespace ?? '',
    uid: n.uid,
    health: n.health?.status ?? status?.health?.status,
    healthMessage: n.health?.message ?? status?.health?.message,
    sync: status?.status,
    requiresPruning: status?.requiresPruning,
    info: n.info ?? [],
    images: n.images ?? [],
    createdAt: n.createdAt,
    managed: !!status,
    x: 0,
    y: 0,
  };
}

/**
 * Joins the tree (what runs) with status.resources (what git wants, with sync status): a resource in git that
 * is not running yet still shows, as Missing.
 */
export function buildGraph(app: Application, tree: ResourceTree | undefined, expanded: ReadonlySet<string>): Graph {
  const statuses = new Map<string, ResourceStatus>();
  for (const r of app.status?.resources ?? []) statuses.set(resourceKey(r), r);

  const root: GraphNode = {
    id: 'application',
    kind: 'Application',
    group: 'argoproj.io',
    name: app.metadata.name,
    namespace: app.metadata.namespace ?? '',
    health: app.status?.health?.status,
    sync: app.status?.sync?.status,
    info: [],
    images: [],
    managed: false,
    root: true,
    x: 0,
    y: 0,
  };

  const nodes = new Map<string, GraphNode>();
  const byKey = new Map<string, string>();
  const parentsOf = new Map<string, ResourceRef[]>();
  for (const n of tree?.nodes ?? []) {
    const key = resourceKey(n);
    const g = fromResourceNode(n, statuses.get(key));
    nodes.set(g.id, g);
    byKey.set(key, g.id);
    parentsOf.set(g.id, n.parentRefs ?? []);
  }
  for (const [key, s] of statuses) {
    if (byKey.has(key) || s.hook) continue;
    const g: GraphNode = {
      id: key,
      kind: s.kind,
      group: s.group ?? '',
      name: s.name,
      namespace: s.namespace ?? '',
      health: s.health?.status ?? 'Missing',
      healthMessage: s.health?.message,
      sync: s.status,
      requiresPruning: s.requiresPruning,
      info: [],
      images: [],
      managed: true,
      x: 0,
      y: 0,
    };
    nodes.set(g.id, g);
    byKey.set(key, g.id);
  }

  const children = new Map<string, GraphNode[]>();
  const addChild = (parent: string, child: GraphNode) => {
    const list = children.get(parent);
    if (list) list.push(child);
    else children.set(parent, [child]);
  };
  for (const g of nodes.values()) {
    const parents = (parentsOf.get(g.id) ?? [])
      .map((p) => (p.uid && nodes.has(p.uid) ? p.uid : byKey.get(resourceKey(p))))
      .filter((p): p is string => !!p && p !== g.id);
    if (parents.length === 0) addChild(root.id, g);
    else for (const p of new Set(parents)) addChild(p, g);
  }

  const shown: GraphNode[] = [root];
  const edges: [string, string][] = [];
  const seen = new Set<string>([root.id]);
  const visit = (parent: GraphNode) => {
    const kids = (children.get(parent.id) ?? []).sort(compareNodes);
    const folded = new Set<GraphNode>();
    for (const f of FOLDS) {
      const id = `${parent.id}#${f.suffix}`;
      const members = kids.filter((k) => k.kind === f.kind && !children.has(k.id) && !k.managed);
      if (members.length < f.min || expanded.has(id)) continue;
      for (const m of members) folded.add(m);
      const group: GraphNode = {
        id,
        kind: f.kind,
        group: members[0]?.group ?? '',
        name: f.label(members.length),
        namespace: parent.namespace,
        health: worstHealth(members.map((p) => p.health)),
        info: [],
        images: Array.from(new Set(members.flatMap((p) => p.images))),
        managed: false,
        members,
        x: 0,
        y: 0,
      };
      shown.push(group);
      edges.push([parent.id, group.id]);
    }
    for (const k of kids) {
      if (folded.has(k)) continue;
      edges.push([parent.id, k.id]);
      if (seen.has(k.id)) continue;
      seen.add(k.id);
      shown.push(k);
      visit(k);
    }
  };
  visit(root);

  return layout(shown, edges);
}

/** The node as the latest tree and status have it (health and info change while a panel stays open). */
export function latestNode(app: Application, tree: ResourceTree | undefined, node: GraphNode): GraphNode {
  if (node.root || node.members) return node;
  const key = resourceKey(node);
  const status = app.status?.resources?.find((r) => resourceKey(r) === key);
  const found = tree?.nodes?.find((n) => (node.uid && n.uid === node.uid) || resourceKey(n) === key);
  if (found) return { ...fromResourceNode(found, status), x: node.x, y: node.y };
  return status ? { ...node, sync: status.status, health: status.health?.status ?? 'Missing' } : node;
}

function layout(nodes: GraphNode[], edges: [string, string][]): Graph {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 14, ranksep: 56, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const [from, to] of edges) g.setEdge(from, to);
  dagre.layout(g);

  for (const n of nodes) {
    const pos = g.node(n.id) as { x: number; y: number } | undefined;
    n.x = (pos?.x ?? 0) - NODE_WIDTH / 2;
    n.y = (pos?.y ?? 0) - NODE_HEIGHT / 2;
  }
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const out: GraphEdge[] = edges.map(([from, to]) => {
    const a = byId.get(from);
    const b = byId.get(to);
    const start = { x: (a?.x ?? 0) + NODE_WIDTH, y: (a?.y ?? 0) + NODE_HEIGHT / 2 };
    const end = { x: b?.x ?? 0, y: (b?.y ?? 0) + NODE_HEIGHT / 2 };
    return { from, to, points: [start, end] };
  });
  const label = g.graph() as { width?: number; height?: number };
  // Keyboard order follows the picture: column by column, top to bottom.
  nodes.sort((a, b) => a.x - b.x || a.y - b.y);
  return { nodes, edges: out, width: label.width ?? 0, height: label.height ?? 0 };
}

const KIND_SHORT: Record<string, string> = {
  Application: 'app',
  Deployment: 'deploy',
  Service: 'svc',
  ReplicaSet: 'rs',
  Pod: 'pod',
  ConfigMap: 'cm',
  Secret: 'secret',
  StatefulSet: 'sts',
  DaemonSet: 'ds',
  Job: 'job',
  CronJob: 'cj',
  Ingress: 'ing',
  PersistentVolumeClaim: 'pvc',
  PersistentVolume: 'pv',
  ServiceAccount: 'sa',
  Namespace: 'ns',
  Role: 'role',
  RoleBinding: 'rb',
  ClusterRole: 'crole',
  ClusterRoleBinding: 'crb',
  Endpoints: 'ep',
  EndpointSlice: 'eps',
  HorizontalPodAutoscaler: 'hpa',
  NetworkPolicy: 'netpol',
  CustomResourceDefinition: 'crd',
};

export function kindShort(kind: string): string {
  return KIND_SHORT[kind] ?? (kind.replace(/[a-z]/g, '').toLowerCase().slice(0, 4) || kind.slice(0, 4).toLowerCase());
}
