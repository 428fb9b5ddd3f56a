// npm run bundle: the programs as single files in dist/bin, from tsc's output in dist/.
//
//   dist/bin/<name>.js         launcher (the package's bin): runs the bundle through bin-loader.cjs
//   dist/bin/<name>.bundle.js  the program and its dependencies, CommonJS (esbuild), stored as the
//                              module function bin-loader.cjs runs, ASCII only (loaderReady below)
//   dist/bin/<name>.v8-cache   V8 code cache of the bundle, written by running `<name> --help`
//                              (the agent's: by starting it, build/agent-start-cache.mjs)
//   dist/bin/*-worker.js       worker threads' code, bundled on their own
//
// CommonJS, not ESM, because only a CommonJS script can be given a code cache on Node 20; see
// bin-loader.cjs for why the cache matters. dist/bin/package.json marks the folder CommonJS.
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { writeAgentStartCache } from './agent-start-cache.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'dist', 'bin')
const programs = { 'imgdist-sign': 'dist/signer/bin.js', 'imgdist-index': 'dist/index-server/bin.js', 'imgdist-agent': 'dist/agent/bin.js' }
const workers = {
  'piece-worker': 'dist/signer/piece-worker.js',
  'prefix-hash-worker': 'dist/swarm/prefix-hash-worker.js',
  'upload-check-worker': 'dist/index-server/upload-check-worker.js'
}

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n')
copyFileSync(join(root, 'build', 'bin-loader.cjs'), join(out, 'bin-loader.js'))

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outdir: out,
  external: ['utp-native'],
  logLevel: 'warning',
  // the sources are ES modules: import.meta.url (the workers' paths) becomes the bundle's own URL
  define: { 'import.meta.url': '__imgdist_meta_url' },
  banner: { js: "var __imgdist_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [noWebGlobalsAtLoad(), classicLevelBindingOutside()]
}

/**
 * Node 20 defines fetch's classes (FormData, Headers, Request, Response) on globalThis as lazy
 * getters: the first read loads Node's internal copy of undici, 16 ms of the 190 ms an agent
 * takes to start. Two dependencies read them while their modules load, though imgdist never
 * needs them then: cross-fetch-ponyfill (bittorrent-tracker's HTTP announces; every user takes
 * only its default export, fetch) and undici's cookie helpers. The first is replaced by the fetch
 * of the npm undici that the programs load anyway (so the first announce does not load Node's
 * copy either), the second is patched.
 */
function noWebGlobalsAtLoad () {
  return {
    name: 'no-web-globals-at-load',
    setup (b) {
      b.onResolve({ filter: /^cross-fetch-ponyfill$/ }, () => ({ path: 'cross-fetch-ponyfill', namespace: 'imgdist-shim' }))
      // the npm undici the programs load anyway, rather than Node's own copy of it
      b.onLoad({ filter: /.*/, namespace: 'imgdist-shim' }, () => ({
        contents: "import { fetch } from 'undici'\nexport default fetch\n",
        loader: 'js',
        resolveDir: root
      }))
      b.onLoad({ filter: /undici[\\/]lib[\\/]web[\\/]cookies[\\/]index\.js$/ }, (args) => {
        const src = readFileSync(args.path, 'utf8')
        const patched = src.replace('[Headers, globalThis.Headers]', '[Headers]')
        if (patched === src) throw new Error(`${args.path}: the read of globalThis.Headers to drop is gone; check no-web-globals-at-load`)
        return { contents: patched, loader: 'js' }
      })
    }
  }
}

/**
 * classic-level's JavaScript (and abstract-level's under it) goes into the bundle, and so into
 * its code cache: outside, it was compiled from source at every start, 17 ms of a lone agent's.
 * Only its binding.js stays outside, required by package path at run time: it finds the native
 * LevelDB addon relative to its own directory (node-gyp-build(__dirname)), which a bundled copy
 * would look for in dist/bin.
 */
function classicLevelBindingOutside () {
  return {
    name: 'classic-level-binding-outside',
    setup (b) {
      b.onResolve({ filter: /^\.\/binding(\.js)?$/ }, (args) => {
        if (!/[\\/]node_modules[\\/]classic-level[\\/]/.test(args.importer)) return undefined
        return { path: 'classic-level/binding.js', external: true }
      })
    }
  }
}

/**
 * The bundle as bin-loader.cjs runs it, so that a start does no work on 4.5 MB of text but read
 * it: wrapped in CommonJS's module function already (no Module.wrap() copy), without the
 * '#!' line (no slice), and ASCII only, so the loader can decode it as latin1, a copy, rather
 * than utf8 (esbuild escapes non-ASCII in strings and regexes; what is left is in comments, and
 * a \u escape of each UTF-16 unit means the same in a string or a regex).
 */
function loaderReady (text) {
  const body = text.replace(/^#![^\n]*/, '').replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return `(function (exports, require, module, __filename, __dirname) {${body}\n})`
}

await build({ ...common, entryPoints: Object.fromEntries(Object.entries(programs).map(([name, src]) => [`${name}.bundle`, join(root, src)])) })
await build({ ...common, entryPoints: Object.fromEntries(Object.entries(workers).map(([name, src]) => [name, join(root, src)])) })

for (const name of Object.keys(programs)) {
  const bundle = join(out, `${name}.bundle.js`)
  writeFileSync(bundle, loaderReady(readFileSync(bundle, 'utf8')))
  const launcher = join(out, `${name}.js`)
  writeFileSync(launcher, `#!/usr/bin/env node\n'use strict'\nrequire('./bin-loader.js').run(__dirname, ${JSON.stringify(name)})\n`)
  chmodSync(launcher, 0o755)
  // --help loads every module of the program, so the cache covers their top-level code
  execFileSync(process.execPath, [launcher, '--help'], { env: { ...process.env, IMGDIST_WRITE_CODE_CACHE: '1' }, stdio: 'ignore' })
}

// the agent's start is what several sites' agents pay at once; its cache comes from a real start
const whyNot = await writeAgentStartCache(out)
if (whyNot !== undefined) process.stderr.write(`bundle: the agent's code cache covers --help only (a start would compile the rest): ${whyNot}\n`)
