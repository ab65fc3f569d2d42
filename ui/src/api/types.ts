// The subset of Argo CD's API objects the UI reads (berth serves Argo CD's shapes).

export type SyncStatusCode = 'Synced' | 'OutOfSync' | 'Unknown';
export type HealthStatusCode = 'Healthy' | 'Progressing' | 'Suspended' | 'Degraded' | 'Missing' | 'Unknown';
export type OperationPhase = 'Running' | 'Terminating' | 'Failed' | 'Error' | 'Succeeded';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** An Application an ApplicationSet generated names the set here (kind `ApplicationSet`). */
  ownerReferences?: OwnerReference[] | null;
  managedFields?: unknown;
}

export interface OwnerReference {
  apiVersion?: string;
  kind: string;
  name: string;
  uid?: string;
  controller?: boolean;
}

export interface ApplicationSource {
  repoURL: string;
  path?: string;
  chart?: string;
  targetRevision?: string;
}

export interface ApplicationDestination {
  server?: string;
  name?: string;
  namespace?: string;
}

export interface SyncPolicy {
  automated?: { prune?: boolean; selfHeal?: boolean } | null;
  syncOptions?: string[];
}

export interface ApplicationSpec {
  project: string;
  source?: ApplicationSource;
  sources?: ApplicationSource[];
  destination: ApplicationDestination;
  syncPolicy?: SyncPolicy;
}

export interface HealthStatus {
  status?: HealthStatusCode;
  message?: string;
}

export interface ResourceStatus {
  group?: string;
  version?: string;
  kind: string;
  namespace?: string;
  name: string;
  status?: SyncStatusCode;
  health?: HealthStatus;
  hook?: boolean;
  requiresPruning?: boolean;
  syncWave?: number;
}

export interface RevisionMetadata {
  author?: string;
  date?: string;
  message?: string;
  tags?: string[];
}

export interface InitiatedBy {
  username?: string;
  automated?: boolean;
}

export interface RevisionHistory {
  id: number;
  revision?: string;
  revisions?: string[];
  deployedAt: string;
  deployStartedAt?: string;
  source?: ApplicationSource;
  initiatedBy?: InitiatedBy;
  revisionMetadata?: RevisionMetadata;
}

export interface ResourceResult {
  group?: string;
  version?: string;
  kind: string;
  namespace?: string;
  name: string;
  status?: string;
  message?: string;
  hookType?: string;
  hookPhase?: string;
  syncPhase?: string;
}

export interface SyncOperationResource {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface Operation {
  sync?: {
    revision?: string;
    prune?: boolean;
    dryRun?: boolean;
    resources?: SyncOperationResource[];
  };
  initiatedBy?: InitiatedBy;
}

export interface OperationState {
  operation?: Operation;
  phase: OperationPhase;
  message?: string;
  startedAt?: string;
  finishedAt?: string;
  syncResult?: {
    resources?: ResourceResult[];
    revision?: string;
  };
}

export interface ApplicationCondition {
  type: string;
  message: string;
  lastTransitionTime?: string;
}

export interface ApplicationStatus {
  resources?: ResourceStatus[];
  sync?: { status?: SyncStatusCode; revision?: string; revisions?: string[] };
  health?: HealthStatus;
  history?: RevisionHistory[];
  conditions?: ApplicationCondition[];
  reconciledAt?: string;
  operationState?: OperationState;
  sourceType?: string;
  summary?: { images?: string[]; externalURLs?: string[] };
}

export interface Application {
  metadata: ObjectMeta;
  spec: ApplicationSpec;
  status?: ApplicationStatus;
  operation?: Operation;
}

export interface ApplicationList {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: Application[] | null;
}

export interface ApplicationWatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  application: Application;
}

export interface ResourceRef {
  group?: string;
  kind: string;
  namespace?: string;
  name: string;
  uid?: string;
}

export interface ResourceNode extends ResourceRef {
  version?: string;
  parentRefs?: ResourceRef[] | null;
  info?: { name: string; value: string }[] | null;
  images?: string[] | null;
  health?: HealthStatus | null;
  createdAt?: string;
  resourceVersion?: string;
}

export interface ResourceTree {
  nodes?: ResourceNode[] | null;
}

export interface ResourceDiff {
  group?: string;
  kind: string;
  namespace?: string;
  name: string;
  targetState?: string;
  liveState?: string;
  normalizedLiveState?: string;
  predictedLiveState?: string;
  hook?: boolean;
  modified?: boolean;
}

export interface KubeEvent {
  metadata: ObjectMeta;
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  firstTimestamp?: string;
  lastTimestamp?: string;
  eventTime?: string;
  source?: { component?: string };
  reportingComponent?: string;
}

/** `GET /api/v1/session/userinfo`; `iss` is `argocd` for a local account, the provider's issuer for SSO. */
export interface UserInfo {
  loggedIn: boolean;
  username?: string;
  iss?: string;
  groups?: string[] | null;
}

/** The OIDC provider argocd-cm's `oidc.config` names (Argo CD's OIDCConfig, what the UI reads of it). */
export interface OidcConfig {
  name?: string;
  issuer?: string;
  clientID?: string;
}

/** Dex's connectors from argocd-cm's `dex.config`. */
export interface DexConfig {
  connectors?: { name: string; type: string }[] | null;
}

/**
 * What the UI reads of `GET /api/v1/settings`; `controllerNamespace` comes only to a logged-in caller. The
 * SSO fields come without a session (the login page reads them).
 */
export interface Settings {
  controllerNamespace?: string;
  appsInAnyNamespaceEnabled?: boolean;
  oidcConfig?: OidcConfig | null;
  dexConfig?: DexConfig | null;
  userLoginsDisabled?: boolean;
}

/** A parameter an action takes (Argo CD's ResourceActionParam); a run sends `{name, value}`. */
export interface ResourceActionParam {
  name: string;
  value?: string;
  type?: string;
  default?: string;
}

/** An action a live object offers now (Argo CD's ResourceAction); `disabled` when not in its current state. */
export interface ResourceAction {
  name: string;
  disabled?: boolean;
  params?: ResourceActionParam[] | null;
  displayName?: string;
  iconClass?: string;
}

/** A sync window as an application sees it (Argo CD's ApplicationSyncWindow, selectors left out). */
export interface SyncWindow {
  kind: string;
  schedule: string;
  duration: string;
  manualSync?: boolean;
  timeZone?: string;
  /** A sync already under way may run on past the window (Argo CD 3.x). */
  syncOverrun?: boolean;
}

/** Argo CD's ApplicationSyncWindowsResponse: empty lists may be left out. */
export interface SyncWindowsResponse {
  activeWindows?: SyncWindow[] | null;
  assignedWindows?: SyncWindow[] | null;
  canSync?: boolean;
}

/** Whether berth's controller reached a cluster on its last request there (Argo CD's ConnectionState). */
export type ConnectionStatus = 'Successful' | 'Failed' | 'Unknown';

export interface ConnectionState {
  status?: ConnectionStatus;
  /** Why it failed, or why berth has not connected yet. */
  message?: string;
  attemptedAt?: string;
}

/** Argo CD's ClusterInfo: what the controller knows of a cluster. */
export interface ClusterInfo {
  connectionState?: ConnectionState;
  /** `major.minor` (`1.31`), once the cluster has answered. */
  serverVersion?: string;
  cacheInfo?: { apisCount?: number; resourcesCount?: number; lastCacheSyncTime?: string };
  /** How many applications deploy there; missing from a server without a controller. */
  applicationsCount?: number;
}

/** A deployment destination (Argo CD's Cluster): in-cluster, or a `cluster` Secret, credentials left out. */
export interface Cluster {
  server: string;
  name: string;
  connectionState?: ConnectionState;
  serverVersion?: string;
  info?: ClusterInfo;
  /** The namespaces berth may manage there (none: all). */
  namespaces?: string[] | null;
  project?: string;
  clusterResources?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ClusterList {
  items?: Cluster[] | null;
}

/** `True`, `False` or `Unknown`, as Kubernetes conditions say it. */
export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** An ApplicationSet's condition: `ErrorOccurred`, `ParametersGenerated`, `ResourcesUpToDate`, `RolloutProgressing`. */
export interface ApplicationSetCondition {
  type: string;
  status: ConditionStatus;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

/** Where one generated Application is in a RollingSync: `Waiting` → `Pending` → `Progressing` → `Healthy`. */
export type RolloutStatus = 'Waiting' | 'Pending' | 'Progressing' | 'Healthy';

export interface ApplicationSetApplicationStatus {
  application: string;
  /** A {@link RolloutStatus}; kept a string, as a newer controller may write another. */
  status?: string;
  /** The step (1-based, as a string) the app falls in; `-1` when no step selects it. */
  step?: string;
  message?: string;
  lastTransitionTime?: string;
  targetRevisions?: string[];
}

/** One Application a set owns, as its `status.resources` lists it. */
export interface ApplicationSetResource {
  kind?: string;
  namespace?: string;
  name: string;
  status?: SyncStatusCode;
  health?: HealthStatus | null;
}

export interface RolloutMatchExpression {
  key: string;
  operator: string;
  values?: string[];
}

export interface RolloutStep {
  matchExpressions?: RolloutMatchExpression[] | null;
  maxUpdate?: number | string;
}

/** The set, as the UI reads it: generators are kept as sent (only their kinds are shown). */
export interface ApplicationSet {
  metadata: ObjectMeta;
  spec: {
    goTemplate?: boolean;
    generators?: Record<string, unknown>[] | null;
    template?: { metadata?: { name?: string; labels?: Record<string, string> }; spec?: Partial<ApplicationSpec> };
    strategy?: { type?: string; rollingSync?: { steps?: RolloutStep[] | null } };
    syncPolicy?: { preserveResourcesOnDeletion?: boolean; applicationsSync?: string };
  };
  status?: {
    conditions?: ApplicationSetCondition[] | null;
    applicationStatus?: ApplicationSetApplicationStatus[] | null;
    resources?: ApplicationSetResource[] | null;
    resourcesCount?: number;
  };
}

export interface ApplicationSetList {
  items?: ApplicationSet[] | null;
}
