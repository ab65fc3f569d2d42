// Sync, health and connection icons: a shape and a colour each, with the status as text for screen readers.
import type { ConnectionStatus, HealthStatusCode, RolloutStatus, SyncStatusCode } from '../api/types';

type IconProps = { size?: number; label?: boolean };

const paths: Record<string, string> = {
  check: 'M4.5 8.5l2.3 2.3 4.7-5',
  arrow: 'M8 11.5V4.5M5 7.5l3-3 3 3',
  question: 'M6.2 6.2a1.9 1.9 0 1 1 2.6 1.8c-.5.2-.8.6-.8 1.1v.4M8 11.4v.1',
  heart: 'M8 12.6S3.2 9.7 3.2 6.6A2.3 2.3 0 0 1 8 5.2a2.3 2.3 0 0 1 4.8 1.4c0 3.1-4.8 6-4.8 6z',
  cross: 'M5.5 5.5l5 5M10.5 5.5l-5 5',
  pause: 'M6.5 5v6M9.5 5v6',
  ghost: 'M5 12V7a3 3 0 0 1 6 0v5l-1.5-1-1.5 1-1.5-1z',
  spin: 'M8 3.5a4.5 4.5 0 1 1-4.5 4.5',
};

function Icon({ shape, tone, size, title }: { shape: string; tone: string; size: number; title: string }) {
  const filled = shape === 'heart';
  return (
    <svg
      class={`icon tone-${tone}${shape === 'spin' ? ' spinning' : ''}`}
      width={size}
      height={size}
      viewBox="0 0 16 16"
      role={title ? 'img' : undefined}
      aria-label={title || undefined}
      aria-hidden={title ? undefined : 'true'}
    >
      {title ? <title>{title}</title> : null}
      {shape === 'heart' || shape === 'spin' ? null : <circle cx="8" cy="8" r="6.5" class="icon-ring" />}
      <path d={paths[shape]} class={filled ? 'icon-fill' : 'icon-stroke'} />
    </svg>
  );
}

const syncLook: Record<SyncStatusCode, [string, string]> = {
  Synced: ['check', 'ok'],
  OutOfSync: ['arrow', 'warn'],
  Unknown: ['question', 'muted'],
};

const healthLook: Record<HealthStatusCode, [string, string]> = {
  Healthy: ['heart', 'ok'],
  Progressing: ['spin', 'info'],
  Suspended: ['pause', 'muted'],
  Degraded: ['cross', 'bad'],
  Missing: ['ghost', 'warn'],
  Unknown: ['question', 'muted'],
};

export function SyncStatusIcon({ status, size = 16, label = false }: IconProps & { status: SyncStatusCode | undefined }) {
  const s = status ?? 'Unknown';
  const [shape, tone] = syncLook[s];
  return (
    <span class="status" data-sync={s}>
      <Icon shape={shape} tone={tone} size={size} title={label ? '' : `Sync: ${s}`} />
      {label ? <span class="status-text">{s}</span> : null}
    </span>
  );
}

export function HealthStatusIcon({ status, size = 16, label = false }: IconProps & { status: HealthStatusCode | undefined }) {
  const s = status ?? 'Unknown';
  const [shape, tone] = healthLook[s];
  return (
    <span class="status" data-health={s}>
      <Icon shape={shape} tone={tone} size={size} title={label ? '' : `Health: ${s}`} />
      {label ? <span class="status-text">{s}</span> : null}
    </span>
  );
}

const phaseLook: Record<string, [string, string]> = {
  Succeeded: ['check', 'ok'],
  Running: ['spin', 'info'],
  Pending: ['spin', 'muted'],
  Terminating: ['spin', 'warn'],
  Failed: ['cross', 'bad'],
  Error: ['cross', 'bad'],
  SyncFailed: ['cross', 'bad'],
  Synced: ['check', 'ok'],
  Pruned: ['check', 'ok'],
  PruneSkipped: ['pause', 'muted'],
  OutOfSync: ['arrow', 'warn'],
};

/** An operation's or a resource result's phase ("Succeeded", "SyncFailed"…). */
export function PhaseIcon({ phase, size = 16 }: { phase: string | undefined; size?: number }) {
  const p = phase ?? 'Unknown';
  const [shape, tone] = phaseLook[p] ?? ['question', 'muted'];
  return (
    <span class="status" data-phase={p}>
      <Icon shape={shape} tone={tone} size={size} title="" />
      <span class="status-text">{p}</span>
    </span>
  );
}

const connectionLook: Record<ConnectionStatus, [string, string]> = {
  Successful: ['check', 'ok'],
  Failed: ['cross', 'bad'],
  Unknown: ['question', 'muted'],
};

/** A cluster's connection state: whether berth's last request there succeeded. */
export function ConnectionStatusIcon({ status, size = 16, label = false }: IconProps & { status: ConnectionStatus | undefined }) {
  const s = status && status in connectionLook ? status : 'Unknown';
  const [shape, tone] = connectionLook[s];
  return (
    <span class="status" data-connection={s}>
      <Icon shape={shape} tone={tone} size={size} title={label ? '' : `Connection: ${s}`} />
      {label ? <span class="status-text">{s}</span> : null}
    </span>
  );
}

const rolloutLook: Record<RolloutStatus, [string, string]> = {
  Waiting: ['pause', 'muted'],
  Pending: ['spin', 'muted'],
  Progressing: ['spin', 'info'],
  Healthy: ['heart', 'ok'],
};

/** Where an Application is in its set's RollingSync: Waiting, Pending, Progressing or Healthy. */
export function RolloutStatusIcon({ status, size = 16 }: { status: string | undefined; size?: number }) {
  const s = status && status in rolloutLook ? (status as RolloutStatus) : undefined;
  const [shape, tone] = s ? rolloutLook[s] : ['question', 'muted'];
  return (
    <span class="status" data-rollout={status ?? 'Unknown'}>
      <Icon shape={shape} tone={tone} size={size} title="" />
      <span class="status-text">{status ?? 'Unknown'}</span>
    </span>
  );
}
