// managed-resources as the diff compares them: the normalised live object against the predicted one.
import type { ResourceDiff } from '../api/types';
import type { DiffItem } from '../components/DiffView';
import { resourceKey } from './tree';
import { stateToYaml } from './yaml';

function present(state: string | undefined): boolean {
  return !!state && state !== 'null';
}

export function liveYaml(r: ResourceDiff): string {
  return stateToYaml(r.liveState);
}

export function desiredYaml(r: ResourceDiff): string {
  return stateToYaml(r.targetState);
}

export function diffItem(r: ResourceDiff): DiffItem {
  const before = stateToYaml(present(r.normalizedLiveState) ? r.normalizedLiveState : r.liveState);
  // Nothing in git means the object goes (prune): the desired side is empty whatever was predicted.
  const after = present(r.targetState) ? stateToYaml(present(r.predictedLiveState) ? r.predictedLiveState : r.targetState) : '';
  return { id: resourceKey(r), title: `${r.kind}${r.namespace ? ` ${r.namespace}/` : ' '}${r.name}`, before, after };
}
