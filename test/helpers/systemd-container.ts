import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { waitFor } from './agent-proc.js'

/**
 * systemd as PID 1 of a throwaway container, for testing the units in deploy/ the way a site
 * runs them. The machine's own PID 1 is not systemd (CI runs in VMs and containers), so this
 * does what systemd-nspawn does, with util-linux alone: new mount, PID, cgroup, UTS and IPC
 * namespaces (the network is the host's, so the test reaches the services on 127.0.0.1), the
 * host's root file system under an overlay whose upper layer is a tmpfs (nothing the container
 * writes reaches the host's disk), a cgroup v2 hierarchy rooted in one cgroup of its own, a
 * minimal /dev, /proc/sys and /sys read-only, and an empty /etc/systemd/system (the host's
 * enabled services stay off). `container=` is set, so systemd treats it as a container, and
 * the new root is made a shared mount first, as nspawn does: systemd only does that itself
 * outside containers, and without it the mounts a service's helper makes in its own namespace
 * never reach PID 1's (LoadCredential='s directory stayed an empty root-only one).
 *
 * Units that would change the shared kernel (sysctl, binfmt, modules) are masked as well, in case
 * a unit's condition does not already skip them.
 */

export interface SystemdContainer {
  /** the container's systemd, as the host numbers it */
  pid: number
  /** the container's file system, from the host: `/proc/<pid>/root` */
  root: string
  /** runs a command inside (as root), synchronously */
  exec: (argv: string[]) => SpawnSyncReturns<string>
  /** the same, its stdout trimmed; throws with `what`, the status and the output if it fails */
  sh: (argv: string[], what: string) => string
  /** writes a file inside (parents made) */
  write: (path: string, data: string | Buffer, mode?: number) => Promise<void>
  /** `systemctl show -p PROP --value UNIT` */
  show: (unit: string, prop: string) => string
  /** a unit's journal, messages only */
  journal: (unit: string) => string
  /** what the boot script printed, then systemd's own messages (PID 1's, from the container's journal) */
  log: () => Promise<string>
  /** kills every process in the container and removes its cgroup; idempotent */
  stop: () => Promise<void>
}

/** Why the container cannot start here, or false. */
export function systemdContainerMissing (): string | false {
  if (process.getuid?.() !== 0) return 'not root (namespaces, mounts and cgroups need it)'
  const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
  const tools = ['unshare', 'nsenter', 'setpriv', 'mount', 'pivot_root', 'useradd', 'runuser'].filter((c) => !have(c))
  if (tools.length > 0) return `${tools.join(', ')} missing (util-linux, passwd)`
  if (spawnSync('test', ['-x', '/lib/systemd/systemd']).status !== 0) return '/lib/systemd/systemd missing (apt-get install systemd)'
  const fs = spawnSync('cat', ['/proc/filesystems'], { encoding: 'utf8' }).stdout
  const kernel = ['overlay', 'cgroup2'].filter((f) => !new RegExp(`\\s${f}$`, 'm').test(fs))
  if (kernel.length > 0) return `the kernel lacks ${kernel.join(' and ')}`
  return false
}

/** Masked in the container: they would act on the kernel it shares with the host. */
const MASKED = ['systemd-sysctl.service', 'systemd-binfmt.service', 'proc-sys-fs-binfmt_misc.automount', 'proc-sys-fs-binfmt_misc.mount',
  'systemd-modules-load.service', 'systemd-remount-fs.service', 'systemd-udevd.service', 'systemd-udev-trigger.service',
  'systemd-timesyncd.service', 'systemd-pstore.service', 'getty.target', 'console-getty.service']

// $1 work dir (a tmpfs is mounted on it), $2 the cgroup's name, then pairs of host path and
// container path to bind read-only. Runs in a private mount namespace (unshare --mount).
const STAGE1 = `set -euo pipefail
W=$1; CG=$2
mount -t tmpfs -o mode=700 imgdist-ct "$W"
mkdir "$W/cg"
mount -t cgroup2 none "$W/cg"
# what a killed run left (empty cgroups; rmdir refuses any that still hold a process)
for d in "$W"/cg/imgdist-test-*; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
mkdir "$W/cg/$CG"
echo $$ > "$W/cg/$CG/cgroup.procs"
umount "$W/cg"
exec unshare --cgroup --pid --fork --kill-child=SIGKILL --uts --ipc bash -c "$STAGE2" stage2 "$@"`

const STAGE2 = `set -euo pipefail
W=$1; shift 2
R=$W/root
mkdir "$W/upper" "$W/work" "$R"
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/upper,workdir=$W/work" "$R"
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"; mount -o remount,bind,ro "$R/proc/sys"
mount --rbind /sys "$R/sys"
mount -t cgroup2 none "$R/sys/fs/cgroup"
mount -o remount,bind,ro "$R/sys"
mount -t tmpfs -o mode=755 dev "$R/dev"
for d in null zero full random urandom tty; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$R/dev/pts"; ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777 shm "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=755 run "$R/run"
mount -t tmpfs -o mode=1777 tmp "$R/tmp"
mount -t tmpfs -o mode=755 units "$R/etc/systemd/system"
while [ $# -ge 2 ]; do
  if [ -d "$1" ]; then mkdir -p "$R$2"; else mkdir -p "$(dirname "$R$2")"; touch "$R$2"; fi
  mount --bind "$1" "$R$2"; mount -o remount,bind,ro "$R$2"; shift 2
done
for u in ${MASKED.join(' ')}; do ln -s /dev/null "$R/etc/systemd/system/$u"; done
printf '[Unit]\\nDescription=imgdist unit tests\\n' > "$R/etc/systemd/system/imgdist-test.target"
tr -d '-' < /proc/sys/kernel/random/uuid > "$R/etc/machine-id"
echo imgdist-test > "$R/etc/hostname"
mkdir "$R/.oldroot"
cd "$R"
pivot_root . .oldroot
exec env -i container=imgdist-test SYSTEMD_LOG_TARGET=journal PATH=/usr/sbin:/usr/bin:/sbin:/bin \\
  /bin/sh -c 'umount -l /.oldroot && rmdir /.oldroot && mount --make-rshared / && exec /lib/systemd/systemd --unit=imgdist-test.target'`

/** The first descendant of `pid` whose command is `comm`. */
async function descendant (pid: number, comm: string): Promise<number | undefined> {
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter((k) => k !== '').map(Number)
  for (const k of kids) {
    if ((await readFile(`/proc/${k}/comm`, 'utf8').catch(() => '')).trim() === comm) return k
    const deeper = await descendant(k, comm)
    if (deeper !== undefined) return deeper
  }
  return undefined
}

/**
 * Boots the container and waits until systemd reports the system running (or degraded).
 * `binds`: host paths shown read-only inside, as [host, container] pairs.
 */
export async function bootSystemd (binds: Array<[string, string]>): Promise<SystemdContainer> {
  const work = await mkdtemp(join(tmpdir(), 'imgdist-ct-'))
  const cgroup = `imgdist-test-${process.pid}-${Date.now()}`
  const log = join(tmpdir(), `${cgroup}.log`)
  const fd = openSync(log, 'w')
  // If the test process dies (a CI timeout), the kernel kills unshare (pdeathsig) and unshare
  // the container's PID 1 (--kill-child), which takes every process in the container with it.
  const proc = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', STAGE1, 'stage1', work, cgroup, ...binds.flat()],
    { stdio: ['ignore', fd, fd], env: { ...process.env, STAGE2 } })
  closeSync(fd)
  const exited = new Promise<void>((resolve) => { proc.once('exit', () => { resolve() }) })
  const consoleText = async (): Promise<string> => await readFile(log, 'utf8').catch(() => '')
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    const init = await descendant(proc.pid as number, 'systemd')
    if (init !== undefined) try { process.kill(init, 'SIGKILL') } catch {} // PID 1 of the namespace: the kernel kills the rest
    proc.kill('SIGKILL')
    await exited
    // The cgroup and whatever systemd made under it, deepest first, once the processes are gone.
    const clean = `set -e; mount -t cgroup2 none "$1"; [ -d "$1/$2" ] || exit 0
      for i in $(seq 1 50); do find "$1/$2" -depth -type d -exec rmdir {} + 2>/dev/null && exit 0; sleep 0.1; done; exit 1`
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', clean, 'clean', work, cgroup], { encoding: 'utf8' })
    await rm(work, { recursive: true, force: true })
    await rm(log, { force: true })
    if (r.status !== 0) throw new Error(`could not remove the container's cgroup ${cgroup}: ${r.stderr}`)
  }
  try {
    const pid = await waitFor('the container\'s systemd', async () => await descendant(proc.pid as number, 'systemd'), 20_000)
    // A clean environment inside, as an operator's root shell has. `env -i` there, not spawn's
    // `env` option: tap's @tapjs/processinfo adds its NODE_OPTIONS (an --import of a file in the
    // checkout, which the container does not see at that path) to every child the test spawns.
    const exec = (argv: string[]): SpawnSyncReturns<string> =>
      spawnSync('nsenter', ['-t', String(pid), '-m', '-p', '-u', '-i', '-C', '-r', '-w', '--',
        'env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', ...argv], { encoding: 'utf8', timeout: 60_000 })
    await waitFor('systemd running in the container', async () => {
      const state = exec(['systemctl', 'is-system-running']).stdout.trim()
      if (state === 'running' || state === 'degraded') return state
      return undefined
    }, 30_000)
    const root = `/proc/${pid}/root`
    await access(join(root, 'etc/systemd/system/imgdist-test.target'))
    const sh = (argv: string[], what: string): string => {
      const r = exec(argv)
      if (r.status !== 0) throw new Error(`${what}: ${argv.join(' ')} exited ${String(r.status)}: ${r.stderr}${r.stdout}`)
      return r.stdout.trim()
    }
    const write = async (path: string, data: string | Buffer, mode = 0o644): Promise<void> => {
      await mkdir(dirname(join(root, path)), { recursive: true })
      await writeFile(join(root, path), data, { mode })
    }
    const show = (unit: string, prop: string): string => sh(['systemctl', 'show', '-p', prop, '--value', unit], `systemctl show ${unit}`)
    const journal = (unit: string): string => exec(['journalctl', '--no-pager', '-o', 'cat', '-u', unit]).stdout
    const managerLog = async (): Promise<string> => `${await consoleText()}${exec(['journalctl', '--no-pager', '-o', 'cat', '_PID=1']).stdout}`
    return { pid, root, exec, sh, write, show, journal, log: managerLog, stop }
  } catch (err) {
    const text = await consoleText()
    await stop().catch(() => {})
    throw new Error(`the systemd container did not start: ${(err as Error).message}\n${text}`)
  }
}
