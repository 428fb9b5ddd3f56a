import { ImgdistError } from '../lib/errors.js'
import type { JsonStore } from './db.js'

const PAUSED_KEY = 'paused'
const PAUSED_AT_KEY = 'pausedAt'

/**
 * The operator's pause as kept in LevelDB, so that it outlasts a restart or a reboot (a
 * maintenance window, a full disk): whether paused, and since when (RFC 3339; absent for a pause
 * saved by an agent before that was kept).
 */
export async function loadPause (settings: JsonStore): Promise<{ paused: boolean, pausedAt?: string }> {
  if (await settings.get(PAUSED_KEY) !== true) return { paused: false }
  const at = await settings.get(PAUSED_AT_KEY)
  return { paused: true, ...(typeof at === 'string' ? { pausedAt: at } : {}) }
}

/** Saves it in one batch; IO_ERROR says the pause or resume took effect but will not outlast a restart. */
export async function savePause (settings: JsonStore, paused: boolean, pausedAt: string | undefined): Promise<void> {
  try {
    await settings.batch([
      { type: 'put', key: PAUSED_KEY, value: paused },
      paused && pausedAt !== undefined ? { type: 'put', key: PAUSED_AT_KEY, value: pausedAt } : { type: 'del', key: PAUSED_AT_KEY }
    ])
  } catch (err) {
    throw new ImgdistError('IO_ERROR', `${paused ? 'paused' : 'resumed'}, but could not save it for the next start`, { cause: err })
  }
}
