/**
 * Which free-form image properties (an index entry's `properties`, a Glance target's own
 * `properties`) can reach Glance. The signer checks an entry with this before anyone signs it, and
 * the Glance target checks again before it registers: one rule in one place, so an endorser
 * learns at `imgdist-sign add` what every site would otherwise refuse only after the download.
 */

/** Glance's v2 schema caps extra property values (and names) at 255 characters. */
export const MAX_PROPERTY_LENGTH = 255

/** Property names Glance owns or refuses to take as extra properties. */
export const GLANCE_CORE_PROPERTIES: ReadonlySet<string> = new Set(['id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'owner',
  'size', 'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value', 'created_at', 'updated_at', 'tags', 'disk_format',
  'container_format', 'min_disk', 'min_ram', 'locations', 'direct_url', 'self', 'file', 'schema', 'stores'])

// Same as lib/schema.ts's key pattern, so a site's own config is held to what a signed entry is.
const NAME_RE = /^[A-Za-z0-9_.:-]{1,255}$/

/** Why Glance (or imgdist itself) would refuse this property, or undefined when it may be set. */
export function propertyProblem (name: string, value: string): string | undefined {
  if (!NAME_RE.test(name)) return 'name must be 1-255 of A-Z a-z 0-9 _ . : -'
  // os_glance* is Glance's reserved namespace; imgdist_* is imgdist's identity (DESIGN.md §4),
  // which a catalogue must not be able to forge.
  if (GLANCE_CORE_PROPERTIES.has(name) || name.startsWith('os_glance') || name.startsWith('imgdist_')) return 'reserved'
  if (value.length > MAX_PROPERTY_LENGTH) return `longer than ${MAX_PROPERTY_LENGTH} characters`
  return undefined
}

/** Every refused property, as "name: reason", in the order given. */
export function propertyProblems (entries: Array<[string, string]>): string[] {
  const out: string[] = []
  for (const [k, v] of entries) {
    const why = propertyProblem(k, v)
    if (why !== undefined) out.push(`${k}: ${why}`)
  }
  return out
}
