import { execFile, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { freePort } from './free-port.js'

/**
 * Starts a real Keystone and a real Glance (Debian packages) for the glance target's tests, via
 * test/glance/*.sh, and provisions them over Keystone's REST API: a `demo` project and user with
 * the `member` role, an application credential of that user, the `glance` service user, and the
 * image endpoint in the catalog. One start per test file; `stop()` ends both by PID.
 */

const run = promisify(execFile)
const SCRIPTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'glance')

export const OPENSTACK_PACKAGES = ['glance-api', 'python3-glance', 'keystone', 'python3-keystone', 'uwsgi', 'uwsgi-plugin-python3', 'sqlite3']

export function missingOpenStackPackages (): string[] {
  return OPENSTACK_PACKAGES.filter((p) => {
    try { execFileSync('dpkg', ['-s', p], { stdio: 'ignore' }); return false } catch { return true }
  })
}

export interface OpenStack {
  dir: string
  keystoneUrl: string
  glanceUrl: string
  glancePort: number
  admin: { username: string, password: string, project: string }
  demo: { username: string, password: string, project: string, projectId: string, userId: string }
  appCred: { id: string, secret: string, name: string }
  /** seconds each service took to come up, for the report */
  startSeconds: { keystone: number, glance: number }
  /** the environment an openrc file gives the demo user (password auth) */
  demoOpenrc: () => Record<string, string>
  /** a project-scoped token for demo (assertions look at Glance directly with it) */
  demoToken: () => Promise<string>
  /** GET a Glance path as demo, JSON */
  glanceGet: (path: string) => Promise<{ status: number, body: any }>
  stopGlance: (opts?: { kill?: boolean }) => Promise<void>
  startGlance: () => Promise<void>
  stop: () => Promise<void>
}

async function ks (url: string, method: string, path: string, token: string | undefined, body?: unknown): Promise<{ status: number, body: any, token?: string }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token !== undefined ? { 'x-auth-token': token } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  const parsed: unknown = text === '' ? undefined : JSON.parse(text)
  if (res.status >= 300) throw new Error(`keystone ${method} ${path}: ${res.status} ${text}`)
  return { status: res.status, body: parsed, token: res.headers.get('x-subject-token') ?? undefined }
}

export async function passwordToken (keystoneUrl: string, user: string, password: string, project: string): Promise<{ token: string, body: any }> {
  const r = await ks(keystoneUrl, 'POST', '/auth/tokens', undefined, {
    auth: {
      identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
      scope: { project: { name: project, domain: { id: 'default' } } }
    }
  })
  return { token: r.token as string, body: r.body }
}

export async function startOpenStack (): Promise<OpenStack> {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-openstack-'))
  const ksPort = await freePort()
  const glancePort = await freePort()
  const keystoneUrl = `http://127.0.0.1:${ksPort}/v3`
  const glanceUrl = `http://127.0.0.1:${glancePort}`
  const admin = { username: 'admin', password: 'admin-pass', project: 'admin' }
  const glancePass = 'glance-service-pass'
  // if the test process dies without its teardown, do not leave Keystone and Glance running
  const killOnExit = (): void => {
    for (const f of [join(dir, 'glance', 'glance-api.pid'), join(dir, 'keystone', 'keystone.pid')]) {
      try { process.kill(-Number(readFileSync(f, 'utf8').trim()), 'SIGKILL') } catch {}
    }
  }
  process.once('exit', killOnExit)
  const stopAll = async (): Promise<void> => {
    process.removeListener('exit', killOnExit)
    await run('bash', [join(SCRIPTS, 'stop.sh'), join(dir, 'glance')]).catch(() => {})
    await run('bash', [join(SCRIPTS, 'stop.sh'), join(dir, 'keystone')]).catch(() => {})
  }
  try {
    let t0 = Date.now()
    await run('bash', [join(SCRIPTS, 'start-keystone.sh'), join(dir, 'keystone'), String(ksPort), admin.password])
    const keystoneSeconds = (Date.now() - t0) / 1000

    const adminTok = (await passwordToken(keystoneUrl, admin.username, admin.password, admin.project)).token
    const role = async (name: string): Promise<string> => (await ks(keystoneUrl, 'GET', `/roles?name=${name}`, adminTok)).body.roles[0].id
    const project = async (name: string): Promise<string> =>
      (await ks(keystoneUrl, 'POST', '/projects', adminTok, { project: { name, domain_id: 'default' } })).body.project.id
    const user = async (name: string, password: string): Promise<string> =>
      (await ks(keystoneUrl, 'POST', '/users', adminTok, { user: { name, password, domain_id: 'default' } })).body.user.id
    const grant = async (p: string, u: string, r: string): Promise<void> => { await ks(keystoneUrl, 'PUT', `/projects/${p}/users/${u}/roles/${r}`, adminTok) }
    const [adminRole, memberRole] = [await role('admin'), await role('member')]
    const serviceProject = await project('service')
    const demoProject = await project('demo')
    const glanceUser = await user('glance', glancePass)
    await grant(serviceProject, glanceUser, adminRole)
    const demo = { username: 'demo', password: 'demo-pass', project: 'demo', projectId: demoProject, userId: '' }
    demo.userId = await user(demo.username, demo.password)
    await grant(demoProject, demo.userId, memberRole)
    const svc = (await ks(keystoneUrl, 'POST', '/services', adminTok, { service: { type: 'image', name: 'glance' } })).body.service.id
    for (const iface of ['public', 'internal']) {
      await ks(keystoneUrl, 'POST', '/endpoints', adminTok, { endpoint: { service_id: svc, interface: iface, url: glanceUrl, region_id: 'RegionOne' } })
    }
    const demoTok = (await passwordToken(keystoneUrl, demo.username, demo.password, demo.project)).token
    const ac = (await ks(keystoneUrl, 'POST', `/users/${demo.userId}/application_credentials`, demoTok,
      { application_credential: { name: 'imgdist-test', description: 'imgdist glance target tests' } })).body.application_credential
    const appCred = { id: ac.id as string, secret: ac.secret as string, name: 'imgdist-test' }

    const startGlance = async (): Promise<void> => {
      await run('bash', [join(SCRIPTS, 'start-glance.sh'), join(dir, 'glance'), String(glancePort), `http://127.0.0.1:${ksPort}`, glancePass])
    }
    t0 = Date.now()
    await startGlance()
    const glanceSeconds = (Date.now() - t0) / 1000

    const demoToken = async (): Promise<string> => (await passwordToken(keystoneUrl, demo.username, demo.password, demo.project)).token
    return {
      dir,
      keystoneUrl,
      glanceUrl,
      glancePort,
      admin,
      demo,
      appCred,
      startSeconds: { keystone: keystoneSeconds, glance: glanceSeconds },
      demoOpenrc: () => ({
        OS_AUTH_URL: keystoneUrl,
        OS_USERNAME: demo.username,
        OS_PASSWORD: demo.password,
        OS_PROJECT_NAME: demo.project,
        OS_USER_DOMAIN_NAME: 'Default',
        OS_PROJECT_DOMAIN_ID: 'default'
      }),
      demoToken,
      glanceGet: async (path) => {
        const res = await fetch(`${glanceUrl}${path}`, { headers: { 'x-auth-token': await demoToken(), accept: 'application/json' } })
        const text = await res.text()
        let body: unknown = text
        try { body = JSON.parse(text) } catch {}
        return { status: res.status, body }
      },
      stopGlance: async (opts = {}) => {
        await run('bash', [join(SCRIPTS, 'stop.sh'), join(dir, 'glance'), 'glance'], { env: { ...process.env, KILL: opts.kill === true ? '1' : '0' } })
      },
      startGlance,
      stop: async () => {
        await stopAll()
        await rm(dir, { recursive: true, force: true })
      }
    }
  } catch (err) {
    await stopAll()
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}
