import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError } from '../lib/errors.js'
import { resolveCloud } from '../agent/targets/glance/clouds-config.js'
import { authRequestBody, findImageEndpoint } from '../agent/targets/glance/keystone-auth.js'
import { createGlanceTarget, GlanceTargetConfig } from '../agent/targets/glance/glance-target.js'
import { validateConfig } from '../lib/config.js'

/** Credentials the way OpenStack users keep them: clouds.yaml (+ secure.yaml), openrc, inline. */

const dir = mkdtempSync(join(tmpdir(), 'imgdist-glance-clouds-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const home = join(dir, 'home')
const cwd = join(dir, 'cwd')
mkdirSync(join(home, '.config', 'openstack'), { recursive: true })
mkdirSync(cwd)
writeFileSync(join(home, '.config', 'openstack', 'clouds.yaml'), `
clouds:
  site-a:
    region_name: RegionTwo
    interface: internal
    auth:
      auth_url: https://keystone.site-a.example:5000
      username: imgdist
      project_name: images
      user_domain_name: Users
      project_domain_id: default
  site-b:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.site-b.example:5000/v3/
      application_credential_id: ac-id
      application_credential_secret: ac-secret
    image_endpoint_override: https://glance.site-b.example/v2
    verify: false
`)
writeFileSync(join(home, '.config', 'openstack', 'secure.yaml'), 'clouds:\n  site-a:\n    auth:\n      password: from-secure-yaml\n')
const cfg = (raw: Record<string, unknown>): GlanceTargetConfig => validateConfig(GlanceTargetConfig, { type: 'glance', ...raw }, 'target')

t.test('a named cloud from ~/.config/openstack/clouds.yaml, password from secure.yaml', async (t) => {
  const c = resolveCloud(cfg({ cloud: 'site-a' }), { env: {}, homeDir: home, cwd })
  t.equal(c.authUrl, 'https://keystone.site-a.example:5000/v3')
  t.equal(c.region, 'RegionTwo')
  t.equal(c.interface, 'internal')
  t.match(c.credentials, { kind: 'password', username: 'imgdist', password: 'from-secure-yaml', userDomainName: 'Users', projectName: 'images', projectDomainId: 'default' })
  t.match(c.source, /clouds\.yaml .* cloud "site-a"/)
  t.notOk(c.source.includes('from-secure-yaml'))
  t.same(authRequestBody(c.credentials), {
    auth: {
      identity: { methods: ['password'], password: { user: { name: 'imgdist', domain: { name: 'Users' }, password: 'from-secure-yaml' } } },
      scope: { project: { name: 'images', domain: { id: 'default' } } }
    }
  })
})

t.test('application credential, endpoint override, verify: false; OS_CLOUD picks the cloud', async (t) => {
  const c = resolveCloud(cfg({}), { env: { OS_CLOUD: 'site-b' }, homeDir: home, cwd })
  t.equal(c.authUrl, 'https://keystone.site-b.example:5000/v3')
  t.equal(c.endpoint, 'https://glance.site-b.example/v2')
  t.equal(c.insecure, true)
  t.same(authRequestBody(c.credentials), { auth: { identity: { methods: ['application_credential'], application_credential: { id: 'ac-id', secret: 'ac-secret' } } } })
})

t.test('./clouds.yaml wins over ~/.config, OS_CLIENT_CONFIG_FILE over both; inline overrides fields', async (t) => {
  writeFileSync(join(cwd, 'clouds.yaml'), 'clouds:\n  site-a:\n    auth:\n      auth_url: http://cwd.example/v3\n      username: u\n      password: p\n      project_id: pid\n')
  t.equal(resolveCloud(cfg({ cloud: 'site-a' }), { env: {}, homeDir: home, cwd }).authUrl, 'http://cwd.example/v3')
  const explicit = join(dir, 'explicit.yaml')
  writeFileSync(explicit, 'clouds:\n  site-a:\n    auth:\n      auth_url: http://explicit.example\n      username: u\n      password: p\n      project_id: pid\n')
  const c = resolveCloud(cfg({ cloud: 'site-a', region: 'R9', auth: { projectId: 'other' } }), { env: { OS_CLIENT_CONFIG_FILE: explicit }, homeDir: home, cwd })
  t.equal(c.authUrl, 'http://explicit.example/v3')
  t.equal(c.region, 'R9')
  t.match(c.credentials, { projectId: 'other' })
  rmSync(join(cwd, 'clouds.yaml'))
})

t.test('an unreadable place on the search path is passed over; an unreadable OS_CLIENT_*_FILE is an error', async (t) => {
  // As under systemd's ProtectHome=yes, where ~/.config/openstack answers EACCES (root, running
  // this test, reads anything, so a home that is a plain file stands in: ENOTDIR).
  const blocked = join(dir, 'blocked-home')
  writeFileSync(blocked, 'not a directory\n')
  const explicit = join(dir, 'only-clouds.yaml')
  writeFileSync(explicit, 'clouds:\n  site-c:\n    auth:\n      auth_url: http://c.example/v3\n      username: u\n      password: p\n      project_id: pid\n')
  const c = resolveCloud(cfg({ cloud: 'site-c' }), { env: { OS_CLIENT_CONFIG_FILE: explicit }, homeDir: blocked, cwd })
  t.equal(c.authUrl, 'http://c.example/v3', 'clouds.yaml from OS_CLIENT_CONFIG_FILE; the secure.yaml search skipped the blocked home')
  t.throws(() => resolveCloud(cfg({ cloud: 'site-c' }), { env: { OS_CLIENT_CONFIG_FILE: explicit, OS_CLIENT_SECURE_FILE: join(blocked, 'secure.yaml') }, homeDir: home, cwd }),
    /cannot read .*blocked-home\/secure\.yaml/, 'a secure.yaml named explicitly must be readable')
  t.throws(() => resolveCloud(cfg({ cloud: 'site-c' }), { env: {}, homeDir: blocked, cwd }), /no clouds\.yaml found/, 'nothing readable at all: the usual error')
})

t.test('OS_* variables of an openrc file, including application credentials by name', async (t) => {
  const c = resolveCloud(cfg({}), {
    env: { OS_AUTH_URL: 'http://ks:5000/v3', OS_USERNAME: 'u', OS_PASSWORD: 'p', OS_TENANT_NAME: 'proj', OS_ENDPOINT_TYPE: 'internalURL', OS_REGION_NAME: 'R1' },
    homeDir: home, cwd
  })
  t.match(c, { interface: 'internal', region: 'R1', source: 'OS_* environment variables' })
  t.match(c.credentials, { kind: 'password', projectName: 'proj', userDomainName: 'Default', projectDomainName: 'Default' })
  const ac = resolveCloud(cfg({}), {
    env: { OS_AUTH_URL: 'http://ks:5000', OS_AUTH_TYPE: 'v3applicationcredential', OS_APPLICATION_CREDENTIAL_NAME: 'imgdist', OS_APPLICATION_CREDENTIAL_SECRET: 's', OS_USERNAME: 'u' },
    homeDir: home, cwd
  })
  t.same(authRequestBody(ac.credentials), {
    auth: { identity: { methods: ['application_credential'], application_credential: { name: 'imgdist', secret: 's', user: { name: 'u', domain: { name: 'Default' } } } } }
  })
})

t.test('every missing or bad field is named', async (t) => {
  const err = t.throws(() => resolveCloud(cfg({ auth: { username: 'u' } }), { env: {}, homeDir: home, cwd })) as unknown as ConfigError
  t.type(err, ConfigError)
  t.match(err.problems, [/auth_url/, /password/, /project_name/])
  t.throws(() => resolveCloud(cfg({ cloud: 'nope' }), { env: {}, homeDir: home, cwd }), /cloud "nope" is not defined/)
  const bad = t.throws(() => createGlanceTarget({ type: 'glance', visibility: 'everyone', maxAttempts: 0, bogus: 1 }, { env: {} })) as unknown as ConfigError
  t.match(bad.problems.join('\n'), /visibility/)
  t.match(bad.problems.join('\n'), /maxAttempts/)
  t.match(bad.problems.join('\n'), /bogus/)
})

t.test('the image endpoint is chosen from the catalog by interface and region', async (t) => {
  const catalog = [
    { type: 'identity', endpoints: [{ interface: 'public', region_id: 'R1', url: 'http://ks' }] },
    { type: 'image', endpoints: [
      { interface: 'public', region_id: 'R1', url: 'https://g1.example/' },
      { interface: 'internal', region_id: 'R1', url: 'http://g1.internal:9292/v2' },
      { interface: 'public', region_id: 'R2', url: 'https://g2.example' }
    ] }
  ]
  t.equal(findImageEndpoint(catalog, 'public', 'R2'), 'https://g2.example')
  t.equal(findImageEndpoint(catalog, 'internal', 'R1'), 'http://g1.internal:9292')
  t.equal(findImageEndpoint(catalog, 'public'), 'https://g1.example')
  t.equal(findImageEndpoint(catalog, 'admin'), undefined)
})
