import { revokeImage } from '../../lib/catalogue-edit.js'
import { ImgdistError } from '../../lib/errors.js'
import { duration, noPositionals, parseCommandArgs, required, str } from '../args.js'
import { loadIndexInput, saveDocument } from '../documents.js'
import { SignerError } from '../errors.js'
import { out, type Io } from '../io.js'
import { droppedSignatures, nextIndexVersion } from '../next-index.js'

export const revokeHelp = `NAME
    imgdist-sign revoke - withdraw an image from the catalogue

SYNOPSIS
    imgdist-sign revoke --index index.yaml --id ID --reason TEXT [--index-expires DURATION]

DESCRIPTION
    Moves image ID from "images" to "revoked" with the reason and the current time. Agents
    retire a revoked image at their site according to their own policy (deactivate, hide,
    delete after a grace period, or keep). Like add, this bumps the index version and drops
    its signatures: sign the result again with a threshold of index keys.

OPTIONS
    --index FILE               the index to edit (required)
    --id ID                    the image id to revoke (required)
    --reason TEXT              why, shown to site operators (required)
    --index-expires DURATION   also set the index expiry to now + DURATION
                               (default: unchanged)
    -h, --help                 show this help

EXAMPLES
    imgdist-sign revoke --index index.yaml --id alma9-20250101 --reason "CVE-2025-1234"
    imgdist-sign sign --index index.yaml --key alice.key --expires 14d

EXIT STATUS
    0  revoked           2  usage error (no such id, unreadable or invalid index)
`

export async function revoke (argv: string[], io: Io): Promise<0> {
  const { values, positionals, help } = parseCommandArgs('revoke', argv, {
    index: { type: 'string' }, id: { type: 'string' }, reason: { type: 'string' }, 'index-expires': { type: 'string' }
  })
  if (help) { out(io, revokeHelp.trimEnd()); return 0 }
  noPositionals('revoke', positionals)
  const path = required('revoke', values.index, '--index')
  const id = required('revoke', values.id, '--id')
  const reason = required('revoke', values.reason, '--reason')
  const lifetime = duration(str(values['index-expires']), '--index-expires')
  const now = io.now()
  const index = await loadIndexInput(path)
  let next
  try {
    next = nextIndexVersion(index, now, (s) => revokeImage(s, id, reason, now), lifetime, 'revoke')
  } catch (err) {
    if (err instanceof ImgdistError && err.code === 'NOT_FOUND') throw new SignerError('NOT_FOUND', `revoke: ${path} has no image with id "${id}"`, 2, { cause: err })
    throw err
  }
  await saveDocument(path, next)
  out(io, `revoked ${id} in ${path} v${next.signed.version} ("${reason}")${droppedSignatures(index)}; now sign it`)
  return 0
}
