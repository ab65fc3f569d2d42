// What the sets list, a set's page and an app's page show of an ApplicationSet, derived in one place.
import type { AppSetRef } from '../api/applicationsets';
import type {
  Application,
  ApplicationSet,
  ApplicationSetApplicationStatus,
  ApplicationSetCondition,
  HealthStatusCode,
  OwnerReference,
} from '../api/types';
import { APPLICATIONSETS_PATH } from '../router';
import { worstHealth } from './tree';

/** The set's page: `/applicationsets/{namespace}/{name}` outside the control namespace, else `/applicationsets/{name}`. */
export function setRoute(set: AppSetRef): string {
  const name = encodeURIComponent(set.name);
  return set.namespace
    ? `${APPLICATIONSETS_PATH}/${encodeURIComponent(set.namespace)}/${name}`
    : `${APPLICATIONSETS_PATH}/${name}`;
}

/** The set that generated `app`: its owner reference of kind ApplicationSet (the controlling one first). */
export function ownerSet(app: Application): OwnerReference | undefined {
  const owners = (app.metadata.ownerReferences ?? []).filter((o) => o.kind === 'ApplicationSet');
  return owners.find((o) => o.controller) ?? owners[0];
}

/** The kinds of a set's generators (`list`, `git` …), a matrix or merge with its children's: `matrix(git, list)`. */
export function generatorKinds(set: ApplicationSet): string[] {
  const kindsOf = (generator: Record<string, unknown>): string[] =>
    Object.entries(generator)
      .filter(([k]) => k !== 'selector')
      .map(([k, v]) => {
        const nested = (v as { generators?: unknown } | null)?.generators;
        if ((k === 'matrix' || k === 'merge') && Array.isArray(nested)) {
          return `${k}(${nested.flatMap((g) => (g && typeof g === 'object' ? kindsOf(g as Record<string, unknown>) : [])).join(', ')})`;
        }
        return k;
      });
  return (set.spec.generators ?? []).flatMap(kindsOf);
}

/** The template's project; empty is `default`, as the server reads it. */
export function setProject(set: ApplicationSet): string {
  return set.spec.template?.spec?.project || 'default';
}

/** The Applications the set owns, as its status lists them. */
export function ownedApps(set: ApplicationSet) {
  return (set.status?.resources ?? []).filter((r) => !r.kind || r.kind === 'Application');
}

/** The worst health of the set's Applications (gitops-engine's order); undefined without any. */
export function setHealth(set: ApplicationSet): HealthStatusCode | undefined {
  return worstHealth(ownedApps(set).map((r) => r.health?.status ?? 'Unknown'));
}

/** How many of the set's Applications are in each health, worst last. */
export function healthCounts(set: ApplicationSet): Map<HealthStatusCode, number> {
  const counts = new Map<HealthStatusCode, number>();
  for (const r of ownedApps(set)) {
    const h = r.health?.status ?? 'Unknown';
    counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  return counts;
}

export function conditionsOf(set: ApplicationSet): ApplicationSetCondition[] {
  return set.status?.conditions ?? [];
}

/** `ErrorOccurred` when True: why the set generates or writes nothing (or not everything). */
export function setError(set: ApplicationSet): ApplicationSetCondition | undefined {
  return conditionsOf(set).find((c) => c.type === 'ErrorOccurred' && c.status === 'True');
}

/** Whether a condition says something is wrong: an error that occurred, or a good state that does not hold. */
export function conditionIsBad(c: ApplicationSetCondition): boolean {
  if (c.type === 'ErrorOccurred') return c.status === 'True';
  if (c.type === 'RolloutProgressing') return false;
  return c.status === 'False';
}

export function isRollingSync(set: ApplicationSet): boolean {
  return set.spec.strategy?.type === 'RollingSync';
}

/** One step of a RollingSync: its number (1-based; `-1` for apps no step selects) and its apps. */
export interface RolloutStepView {
  step: string;
  apps: ApplicationSetApplicationStatus[];
  /** Every app of the step Healthy. */
  done: boolean;
}

/**
 * The rollout by step, in step order (apps no step selects last), and the current step: the first with an
 * Application not yet Healthy, as the controller's RolloutProgressing condition names it.
 */
export function rolloutSteps(set: ApplicationSet): { steps: RolloutStepView[]; current?: string } {
  const byStep = new Map<string, ApplicationSetApplicationStatus[]>();
  for (const s of set.status?.applicationStatus ?? []) {
    const step = s.step || '-1';
    byStep.set(step, [...(byStep.get(step) ?? []), s]);
  }
  // Steps the spec names but no app falls in are shown too: the rollout passes them.
  const declared = set.spec.strategy?.rollingSync?.steps?.length ?? 0;
  for (let i = 1; i <= declared; i++) if (!byStep.has(String(i))) byStep.set(String(i), []);
  const rank = (step: string) => (Number(step) > 0 ? Number(step) : Number.MAX_SAFE_INTEGER);
  const steps = Array.from(byStep, ([step, apps]) => ({
    step,
    apps: apps.sort((a, b) => a.application.localeCompare(b.application)),
    done: apps.every((a) => a.status === 'Healthy'),
  })).sort((a, b) => rank(a.step) - rank(b.step));
  return { steps, current: steps.find((s) => !s.done && s.step !== '-1')?.step };
}
