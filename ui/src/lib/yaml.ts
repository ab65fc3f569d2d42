// Kubernetes objects shown as YAML (block style, keys in the object's order); enough for reading and diffing.

const PLAIN = /^[A-Za-z0-9_./@%+-][A-Za-z0-9 _./@%+:=,-]*$/;
const RESERVED = /^(?:true|false|yes|no|on|off|null|~|y|n|[-+]?(?:\d[\d_]*)?\.?\d+(?:e[-+]?\d+)?|0x[0-9a-f]+|\.inf|\.nan)$/i;

function scalar(value: string | number | boolean | null): string {
  if (value === null) return 'null';
  if (typeof value !== 'string') return String(value);
  if (value !== '' && PLAIN.test(value) && !RESERVED.test(value) && !value.endsWith(' ') && !value.includes(': ')) {
    return value;
  }
  return JSON.stringify(value);
}

function isEmptyContainer(value: unknown): boolean {
  return Array.isArray(value) ? value.length === 0 : typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}

function emit(value: unknown, indent: string, out: string[], first: string): void {
  // `first` is what goes before the value on its first line (a key, or "- ").
  if (Array.isArray(value)) {
    if (value.length === 0) {
      out.push(`${first}[]`);
      return;
    }
    if (first) out.push(first.trimEnd());
    for (const item of value) emit(item, `${indent}  `, out, `${indent}- `);
    return;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) {
      out.push(`${first}{}`);
      return;
    }
    const inList = first.endsWith('- ');
    if (first && !inList) out.push(first.trimEnd());
    entries.forEach(([k, v], i) => {
      const lead = inList && i === 0 ? first : indent;
      const key = `${lead}${scalar(k)}:`;
      if (Array.isArray(v) || (typeof v === 'object' && v !== null)) {
        if (isEmptyContainer(v)) out.push(`${key} ${Array.isArray(v) ? '[]' : '{}'}`);
        else emit(v, Array.isArray(v) ? indent : `${indent}  `, out, key);
      } else if (typeof v === 'string' && v.includes('\n')) {
        out.push(`${key} |${v.endsWith('\n') ? '' : '-'}`);
        for (const line of v.replace(/\n$/, '').split('\n')) out.push(line ? `${indent}  ${line}` : '');
      } else {
        out.push(`${key} ${scalar(v as string | number | boolean | null)}`);
      }
    });
    return;
  }
  if (typeof value === 'string' && value.includes('\n')) {
    out.push(`${first}|${value.endsWith('\n') ? '' : '-'}`);
    for (const line of value.replace(/\n$/, '').split('\n')) out.push(line ? `${indent}${line}` : '');
    return;
  }
  out.push(`${first}${scalar(value as string | number | boolean | null)}`);
}

export function toYaml(value: unknown): string {
  if (value === undefined || value === null) return '';
  const out: string[] = [];
  emit(value, '', out, '');
  return out.join('\n');
}

/** A state string from managed-resources ("" or "null" when the object is absent) as YAML. */
export function stateToYaml(state: string | undefined): string {
  if (!state || state === 'null') return '';
  try {
    return toYaml(JSON.parse(state));
  } catch {
    return state;
  }
}
