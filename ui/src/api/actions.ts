// Resource actions (restart, pause, resume …) on an application's live objects, with Argo CD's paths and shapes.
import { applicationBody, applicationUrl, canI, type AppRef } from './applications';
import { getJson, sendJson } from './client';
import type { ResourceAction } from './types';

/** The live object an action is listed for or run on. */
export interface ActionTarget {
  namespace: string;
  name: string;
  group: string;
  version?: string;
  kind: string;
}

/** A parameter's value, as a run sends it. */
export interface ActionParamValue {
  name: string;
  value: string;
}

/** The actions `target` offers now, disabled ones included. */
export async function listResourceActions(app: AppRef, target: ActionTarget, signal?: AbortSignal): Promise<ResourceAction[]> {
  const q = new URLSearchParams({
    namespace: target.namespace,
    resourceName: target.name,
    version: target.version ?? '',
    kind: target.kind,
    group: target.group,
  });
  const res = await getJson<{ actions?: ResourceAction[] | null }>(applicationUrl(app, '/resource/actions', q), signal);
  return res.actions ?? [];
}

/** Runs `action` on `target` (Argo CD's v2 request: the object and the action in the body). */
export async function runResourceAction(
  app: AppRef,
  target: ActionTarget,
  action: string,
  params: ActionParamValue[] = [],
): Promise<void> {
  await sendJson(
    'POST',
    applicationUrl(app, '/resource/actions/v2'),
    applicationBody(app, {
      namespace: target.namespace,
      resourceName: target.name,
      version: target.version ?? '',
      kind: target.kind,
      group: target.group,
      action,
      resourceActionParameters: params,
    }),
  );
}

/** The RBAC action that running `action` on an object of this kind needs, as Argo CD names it. */
export function actionPermission(target: Pick<ActionTarget, 'group' | 'kind'>, action: string): string {
  return `action/${target.group}/${target.kind}/${action}`;
}

/** The names, of `actions`, that the user may run on `target` in the app whose RBAC object is `rbacObject`. */
export async function permittedActions(rbacObject: string, target: ActionTarget, actions: ResourceAction[]): Promise<Set<string>> {
  const answers = await Promise.all(
    actions.map(async (a) => [a.name, await canI('applications', actionPermission(target, a.name), rbacObject)] as const),
  );
  return new Set(answers.filter(([, allowed]) => allowed).map(([name]) => name));
}
