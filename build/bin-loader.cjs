'use strict'
// Runs one of imgdist's bundled programs (dist/bin/<name>.bundle.js) with V8's code cache, so
// that a start compiles almost nothing. Copied into dist/bin by build/bundle.mjs; the launchers
// dist/bin/<name>.js call it. Why: a 4.5 MB bundle took about 60 ms of CPU to compile at every
// start, a quarter of an agent's start-up; eight agents on two cores (bench:swarm) start a third
// of a second sooner with the cache. Node 20 has no compile cache for ES modules
// (module.enableCompileCache() came in Node 22), hence a CommonJS bundle run through vm.Script.
//
// The cache file starts with the sha1 of the bundle it was made from: V8 checks only the length
// of the source against its cache, so a rebuilt bundle of the same length could otherwise run
// with stale code. A missing, stale or rejected cache (another Node or V8 flags) only costs the
// compile; the build writes the caches (IMGDIST_WRITE_CODE_CACHE=1, see build/bundle.mjs).
// IMGDIST_DEBUG_CODE_CACHE=1 says on stderr whether the cache was used, rejected, stale or missing.

const { createHash } = require('node:crypto')
const { readFileSync, writeFileSync } = require('node:fs')
const Module = require('node:module')
const { dirname, join } = require('node:path')
const vm = require('node:vm')

const HASH_LENGTH = 20

exports.run = function run (dir, name) {
  const file = join(dir, `${name}.bundle.js`)
  const cacheFile = join(dir, `${name}.v8-cache`)
  const source = readFileSync(file)
  const hash = createHash('sha1').update(source).digest()
  let cachedData
  let state = 'missing'
  try {
    const cache = readFileSync(cacheFile)
    if (cache.subarray(0, HASH_LENGTH).equals(hash)) cachedData = cache.subarray(HASH_LENGTH)
    else state = 'stale'
  } catch {}
  // build/bundle.mjs wrote the bundle ASCII-only and already wrapped in the module function
  const script = new vm.Script(source.toString('latin1'), {
    filename: file,
    cachedData,
    // the bundles have no dynamic import() of their own; should a dependency ever add one, it
    // resolves as it would in a plain CommonJS module
    ...(vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER !== undefined ? { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER } : {})
  })
  if (cachedData !== undefined) state = script.cachedDataRejected === true ? 'rejected' : 'used'
  if (process.env.IMGDIST_DEBUG_CODE_CACHE === '1') process.stderr.write(`${name}: code cache ${state}\n`)
  if (process.env.IMGDIST_WRITE_CODE_CACHE === '1') {
    // at exit, so that the cache holds every function the run compiled, not only the top level
    process.once('exit', () => { writeFileSync(cacheFile, Buffer.concat([hash, script.createCachedData()])) })
  }
  const mod = new Module(file, module)
  mod.filename = file
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, dirname(file))
}
