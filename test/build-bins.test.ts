import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'

// The bundled programs in dist/bin (build/bundle.mjs) and their V8 code caches (build/bin-loader.cjs).

const BIN = resolve('dist/bin')

function help (dir: string, name: string): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [join(dir, `${name}.js`), '--help'], { env: { ...process.env, IMGDIST_DEBUG_CODE_CACHE: '1' }, encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('each program runs with the code cache the build made for it', async (t) => {
  for (const name of ['imgdist-sign', 'imgdist-index', 'imgdist-agent']) {
    const r = help(BIN, name)
    t.equal(r.status, 0, `${name} --help exits 0`)
    t.match(r.stderr, `${name}: code cache used`, 'with its code cache')
  }
})

t.test('each bundle is stored ASCII-only, as the launcher decodes it as latin1', async (t) => {
  for (const name of ['imgdist-sign', 'imgdist-index', 'imgdist-agent']) {
    const bytes = readFileSync(join(BIN, `${name}.bundle.js`))
    t.equal(bytes.findIndex((b) => b > 0x7f), -1, `${name}.bundle.js has no byte above 0x7f`)
    t.ok(bytes.subarray(0, 9).toString('latin1') === '(function', `${name}.bundle.js is the module function itself`)
  }
})

t.test('a cache that does not match its bundle is not used, and the program still runs', async (t) => {
  // a copy inside dist/, so that the bundles still find node_modules
  const dir = mkdtempSync(join(resolve('dist'), '.bin-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  cpSync(BIN, dir, { recursive: true })
  const bundle = join(dir, 'imgdist-sign.bundle.js')
  const cache = join(dir, 'imgdist-sign.v8-cache')

  // A rebuilt bundle of the same length: V8 alone would accept the old cache and run the old code.
  const source = readFileSync(bundle, 'utf8')
  t.ok(source.includes('sign and publish a catalogue'))
  writeFileSync(bundle, source.replace('sign and publish a catalogue', 'SIGN AND PUBLISH A CATALOGUE'))
  let r = help(dir, 'imgdist-sign')
  t.match(r.stderr, 'code cache stale', 'the cache is stale')
  t.match(r.stdout, 'SIGN AND PUBLISH A CATALOGUE', 'the new code ran')

  // The right bundle hash over data V8 refuses (another Node, other flags): compiled afresh.
  writeFileSync(cache, Buffer.concat([createHash('sha1').update(readFileSync(bundle)).digest(), Buffer.alloc(4096, 7)]))
  r = help(dir, 'imgdist-sign')
  t.equal(r.status, 0)
  t.match(r.stderr, 'code cache rejected')

  rmSync(cache)
  r = help(dir, 'imgdist-sign')
  t.equal(r.status, 0)
  t.match(r.stderr, 'code cache missing')
  t.match(r.stdout, 'imgdist-sign')
})

t.test('loading a program does not read the fetch globals that make Node load its own undici', async (t) => {
  // Node 20 defines these on globalThis as lazy getters; the first read costs 16 ms of start-up
  // (build/bundle.mjs, no-web-globals-at-load). The preload records every read of them.
  const dir = mkdtempSync(join(resolve('dist'), '.bin-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const trap = join(dir, 'trap.cjs')
  writeFileSync(trap, `
    const read = []
    for (const name of ['FormData', 'Headers', 'Request', 'Response', 'MessageEvent']) {
      const d = Object.getOwnPropertyDescriptor(globalThis, name)
      if (d?.get === undefined) { read.push(name + ' (not lazy on this Node)'); continue }
      Object.defineProperty(globalThis, name, { get () { read.push(name); return d.get.call(this) }, set: d.set, configurable: true, enumerable: d.enumerable })
    }
    process.on('exit', () => { process.stderr.write('fetch globals read: [' + read.join(' ') + ']\\n') })
  `)
  for (const name of ['imgdist-index', 'imgdist-agent']) {
    const r = spawnSync(process.execPath, ['--require', trap, join(BIN, `${name}.js`), '--help'], { encoding: 'utf8' })
    t.equal(r.status, 0, `${name} --help exits 0`)
    t.match(r.stderr, 'fetch globals read: []', `${name} reads none of them while it loads`)
  }
})
