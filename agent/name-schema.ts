import { Type } from '@sinclair/typebox'

/**
 * The one rule for names an operator gives in the agent's config (site, subscription, target):
 * they appear in file names, metrics labels and Glance properties, so lower-case and plain.
 */
export const Name = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,127}$', description: 'lower-case [a-z0-9._-]' })
