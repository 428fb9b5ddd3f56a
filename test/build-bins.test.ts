import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
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

/** build/agent-start-cache.mjs, typed for what this test uses of it */
interface CacheBuild {
  agentConfig: (dir: string, url: string) => string
  makeRoot: (binDir: string, dir: string) => void
  startProgram: (launcher: string, args: string[], readyMsg: string) => { ready: Promise<unknown>, stop: (what: string) => Promise<string | undefined> }
}

t.test("the agent's code cache comes from a download, not only from --help or a start", async (t) => {
  // build/agent-start-cache.mjs: a start compiles config validation, LevelDB, the swarm, the API
  // and the poller, which --help never calls, and a first image the catalogue checks, the peer
  // wire and the target, which a start never calls; a cache without them costs each agent that
  // compile
  const dir = mkdtempSync(join(resolve('dist'), '.bin-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  cpSync(BIN, dir, { recursive: true })
  rmSync(join(dir, 'imgdist-agent.v8-cache'))
  const r = spawnSync(process.execPath, [join(dir, 'imgdist-agent.js'), '--help'], { env: { ...process.env, IMGDIST_WRITE_CODE_CACHE: '1' }, encoding: 'utf8' })
  t.equal(r.status, 0)
  const helpOnly = statSync(join(dir, 'imgdist-agent.v8-cache')).size

  // a start alone, with a catalogue URL that refuses
  const { agentConfig, makeRoot, startProgram } = await import(resolve('build/agent-start-cache.mjs')) as CacheBuild
  makeRoot(dir, dir)
  writeFileSync(join(dir, 'agent.yaml'), agentConfig(dir, 'http://127.0.0.1:9/v1/index.yaml'))
  const agent = startProgram(join(dir, 'imgdist-agent.js'), ['run', '--config', join(dir, 'agent.yaml')], 'imgdist-agent started')
  await agent.ready
  t.equal(await agent.stop('the agent'), undefined, 'the started agent stops cleanly')
  const startOnly = statSync(join(dir, 'imgdist-agent.v8-cache')).size

  const built = statSync(join(BIN, 'imgdist-agent.v8-cache')).size
  t.ok(startOnly > helpOnly * 1.2, `a start's cache (${startOnly} B) holds more than --help compiles (${helpOnly} B)`)
  t.ok(built > startOnly * 1.08, `the build's cache (${built} B) holds more than a start compiles (${startOnly} B)`)
})

t.test("the agent bundle holds classic-level's JavaScript; only its native binding is loaded from node_modules", async (t) => {
  const source = readFileSync(join(BIN, 'imgdist-agent.bundle.js'), 'latin1')
  t.match(source, 'require("classic-level/binding.js")')
  t.notMatch(source, 'require("classic-level")', 'classic-level itself is bundled (and so in the code cache)')
})

t.test("the agent's API loads neither ajv nor fast-json-stringify's compiler: it has no schemas", async (t) => {
  // plain node on tsc's output, so that require.cache lists exactly what the API loaded
  const script = `
    import { createRequire } from 'node:module'
    const require = createRequire(${JSON.stringify(resolve('dist/agent/api.js'))})
    const { createApi } = await import(${JSON.stringify(resolve('dist/agent/api.js'))})
    const { Registry } = require('prom-client')
    const app = await createApi({ metrics: new Registry() })
    await app.ready()
    const r = await app.inject({ method: 'GET', url: '/healthz' })
    console.log(JSON.stringify({ status: r.statusCode, loaded: Object.keys(require.cache).filter((k) => /[\\\\/](ajv|@fastify[\\\\/]ajv-compiler|@fastify[\\\\/]fast-json-stringify-compiler)[\\\\/]/.test(k)) }))
    await app.close()
  `
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.same(JSON.parse(r.stdout), { status: 200, loaded: [] })
})
