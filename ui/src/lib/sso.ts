// Single sign-on as Argo CD's UI shows it: whether the login page offers it, what its button says, and
// whether a session came from it.
import type { Settings, UserInfo } from '../api/types';

/**
 * The provider the login page offers, or undefined without SSO: oidc.config's name ("OIDC" unnamed), Dex's
 * only connector by its name, or "SSO" for Dex with several (Dex then asks which one).
 */
export function ssoProvider(settings: Settings | null | undefined): string | undefined {
  if (settings?.oidcConfig) return settings.oidcConfig.name || 'OIDC';
  const connectors = settings?.dexConfig?.connectors ?? [];
  if (connectors.length === 1) return connectors[0]?.name || 'SSO';
  return connectors.length > 1 ? 'SSO' : undefined;
}

/** A session from the provider, not a local account's (whose tokens berth issues as `argocd`). */
export function isSsoSession(user: UserInfo): boolean {
  return !!user.iss && user.iss !== 'argocd';
}
