/**
 * The life of one image at one site (DESIGN.md §4). The agent stores these, the status API and
 * the fleet view show them, and reports carry them: one list so every part spells them alike.
 */
export const IMAGE_STATES = [
  'listed', 'rejected', 'awaiting-approval', 'approved', 'downloading', 'verifying',
  'registering', 'registered', 'retired', 'failed'
] as const
export type ImageState = typeof IMAGE_STATES[number]

export function isImageState (s: unknown): s is ImageState {
  return typeof s === 'string' && (IMAGE_STATES as readonly string[]).includes(s)
}
