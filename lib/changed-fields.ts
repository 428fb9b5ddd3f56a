import canonicalize from 'canonicalize'

/**
 * The top-level fields whose values differ between two configs, in `a`'s order then `b`'s new
 * ones. Compared as canonical JSON, so that a reordered mapping in a reloaded YAML file is not a
 * change.
 */
export function changedFields (a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])]
  return keys.filter((k) => canonicalize(a[k]) !== canonicalize(b[k]))
}
