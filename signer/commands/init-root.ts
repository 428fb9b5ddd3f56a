import { addDuration } from '../time.js'
import { buildRoot } from '../../lib/catalogue-edit.js'
import { UsageError } from '../../lib/errors.js'
import type { RootSigned } from '../../lib/schema.js'
import { checkRootShape } from '../../lib/trust.js'
import { duration, integer, list, noPositionals, parseCommandArgs, str } from '../args.js'
import { loadRootInput, saveDocument } from '../documents.js'
import { asInputError, SignerError } from '../errors.js'
import { exists, loadPublicKeyArg } from '../files.js'
import { note, out, type Io } from '../io.js'

export const initRootHelp = `NAME
    imgdist-sign init-root - write a new, unsigned root.yaml (or the next version of one)

SYNOPSIS
    imgdist-sign init-root --name CATALOGUE --root-key PUB... [--root-threshold K]
                           --index-key PUB... [--index-threshold K] [--expires 365d]
                           [--out root.yaml] [--force]
    imgdist-sign init-root --from OLD_ROOT [--root-key PUB...] [--index-key PUB...] [...]

DESCRIPTION
    The root document names the catalogue and says which keys may sign the root itself
    (role "root") and the index (role "index"), and how many distinct signatures each needs
    (the threshold). The file is written unsigned: sign it with sign-root, once per root key,
    until the root threshold is met.

    Key rotation: --from OLD_ROOT writes version OLD+1 of the same catalogue. Roles not given on
    the command line are copied from OLD_ROOT. The new root is only valid when signed by a
    threshold of OLD_ROOT's root keys AND a threshold of its own root keys, so sign it with
    both the old and the new root keys; check with
    "imgdist-sign verify --root OLD_ROOT NEW_ROOT".

OPTIONS
    --name CATALOGUE        catalogue name, [a-z0-9][a-z0-9._-]* (required unless --from)
    --root-key PUB          a root public key: a .pub file or inline "ed25519:<base64>";
                            repeat for several keys (required unless --from)
    --root-threshold K      root signatures needed (default 1, or OLD_ROOT's with --from)
    --index-key PUB         an index public key, as --root-key; repeatable
                            (required unless --from)
    --index-threshold K     index signatures needed (default 1, or OLD_ROOT's with --from)
    --expires DURATION      lifetime from now: 90s, 15m, 12h, 14d, 2w (default 365d)
    --from OLD_ROOT         write the successor of OLD_ROOT (version OLD+1, same name)
    --version N             version number (default 1, or OLD+1 with --from)
    --out FILE              where to write (default root.yaml)
    --force                 replace FILE if it exists (default: refuse)
    -h, --help              show this help

EXAMPLES
    imgdist-sign init-root --name cern-images --root-key root.pub \\
        --index-key alice.pub --index-key bob.pub --index-key carol.pub \\
        --index-threshold 2 --out root.yaml
    imgdist-sign sign-root --key root.key root.yaml

    # rotate the root key: v2 signed by the old and the new root key
    imgdist-sign init-root --from root.yaml --root-key root2.pub --out root-v2.yaml
    imgdist-sign sign-root --key root.key root-v2.yaml
    imgdist-sign sign-root --key root2.key root-v2.yaml

EXIT STATUS
    0  written           2  usage error (bad flag, unreadable key, FILE exists, bad OLD_ROOT)
`

export async function initRoot (argv: string[], io: Io): Promise<0> {
  const { values, positionals, help } = parseCommandArgs('init-root', argv, {
    name: { type: 'string' },
    'root-key': { type: 'string', multiple: true },
    'root-threshold': { type: 'string' },
    'index-key': { type: 'string', multiple: true },
    'index-threshold': { type: 'string' },
    expires: { type: 'string' },
    from: { type: 'string' },
    version: { type: 'string' },
    out: { type: 'string' },
    force: { type: 'boolean' }
  })
  if (help) { out(io, initRootHelp.trimEnd()); return 0 }
  noPositionals('init-root', positionals)
  const fromPath = str(values.from)
  const old: RootSigned | undefined = fromPath === undefined ? undefined : (await loadRootInput(fromPath)).signed
  const outPath = str(values.out) ?? 'root.yaml'
  if (values.force !== true && await exists(outPath)) throw new SignerError('IO_ERROR', `${outPath} already exists; refusing to overwrite it (use --force or another --out)`, 2)

  const name = str(values.name) ?? old?.name
  if (name === undefined) throw new UsageError('init-root: --name is required (or --from OLD_ROOT)')
  if (old !== undefined && name !== old.name) throw new UsageError(`init-root: --name "${name}" differs from OLD_ROOT's catalogue "${old.name}"; a rotation keeps the name`)
  const roleKeys = async (flag: string, role: 'root' | 'index'): Promise<string[]> => {
    const given = list(values[`${role}-key`])
    if (given.length > 0) return await Promise.all(given.map(async (k) => await loadPublicKeyArg(k, flag)))
    if (old !== undefined) return old.roles[role].keyids.map((id) => old.keys[id] as string)
    throw new UsageError(`init-root: at least one ${flag} is required`)
  }
  const rootKeys = await roleKeys('--root-key', 'root')
  const indexKeys = await roleKeys('--index-key', 'index')
  const rootThreshold = integer(str(values['root-threshold']), '--root-threshold', 1, 64) ?? old?.roles.root.threshold ?? 1
  const indexThreshold = integer(str(values['index-threshold']), '--index-threshold', 1, 64) ?? old?.roles.index.threshold ?? 1
  const version = integer(str(values.version), '--version', 1) ?? (old !== undefined ? old.version + 1 : 1)
  const lifetime = duration(str(values.expires), '--expires') ?? 365 * 86_400_000
  const now = io.now()

  const doc = buildRoot({ name, version, expires: addDuration(now, lifetime), rootKeys, rootThreshold, indexKeys, indexThreshold })
  try { checkRootShape(doc, 'root') } catch (err) { throw asInputError(err) }
  await saveDocument(outPath, doc)
  const s = doc.signed
  out(io, `wrote ${outPath}: catalogue ${s.name} v${s.version}, root keys ${s.roles.root.keyids.length} (threshold ${s.roles.root.threshold}), ` +
    `index keys ${s.roles.index.keyids.length} (threshold ${s.roles.index.threshold}), expires ${s.expires}`)
  note(io, `next: imgdist-sign sign-root --key ROOT.key ${outPath}` + (old !== undefined ? ` (with ${old.roles.root.threshold} old and ${s.roles.root.threshold} new root key(s))` : ''))
  return 0
}
