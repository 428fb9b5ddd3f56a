/*
 * delay-hub: an Ethernet hub in user space that holds every frame for a fixed time before it
 * forwards it. bench:swarm --delay-ms uses it where the kernel has no netem qdisc (the bench
 * machine's kernel has tbf, htb and red, but neither netem nor fq, so neither `tc ... netem
 * delay` nor an eBPF departure time can add latency there).
 *
 *   delay-hub DELAY_US NETNS_PATH IFNAME [NETNS_PATH IFNAME]...
 *
 * Each port is a TAP device that already exists, persistent, inside a network namespace
 * (`ip tuntap add dev eth0 mode tap vnet_hdr` run in it, addresses and qdiscs set as for any
 * link): the hub enters the namespace, attaches to the device, and leaves. A frame read from
 * one port goes, DELAY_US later, to the port that its destination MAC was last seen on as a
 * source, or to every other port (broadcast, multicast, not yet learned). Frames leave in the
 * order they came: one delay for all means one FIFO.
 *
 * Why the virtio-net header: with it the kernel hands the hub whole TSO super-frames of up to
 * 64 KiB with their checksums left to do, and takes them back the same way on the far port, so
 * the hub moves a few thousand frames a second instead of 70 000 at 800 Mbit/s, and the hosts'
 * stacks work as over a veth pair.
 *
 * It prints "ready" on stdout once every port is attached. It exits when stdin closes (its
 * parent is gone), on SIGTERM, or when a port goes away (its namespace was deleted); on exit it
 * prints one line of counters on stderr. Frames beyond QUEUE_MAX bytes in flight are dropped and
 * counted, like a full qdisc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS 64
#define VNET_HDR 10               /* struct virtio_net_hdr, the TAP default */
#define FRAME_MAX (VNET_HDR + 65536 + 14 + 4)
#define QUEUE_MAX (256u << 20)    /* bytes held at once: 800 Mbit/s x 2.5 s */
#define MAC_TABLE 256

struct frame {
  struct frame *next;
  uint64_t due;                   /* CLOCK_MONOTONIC ns */
  int from;
  size_t len;
  unsigned char data[];
};

static int fds[MAX_PORTS];
static int nports;
static struct frame *head, *tail;
static size_t queued;
static unsigned char macs[MAC_TABLE][6];
static int mac_port[MAC_TABLE];
static int nmacs;
static unsigned long long frames_in, frames_out, bytes_in, dropped, write_errors;

static uint64_t now_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die (const char *what, const char *arg) {
  fprintf(stderr, "delay-hub: %s %s: %s\n", what, arg != NULL ? arg : "", strerror(errno));
  exit(1);
}

/* Attaches to the TAP device `ifname` of the namespace at `nspath` and returns to our own. */
static int attach (const char *nspath, const char *ifname, int home) {
  int ns = open(nspath, O_RDONLY | O_CLOEXEC);
  if (ns < 0) die("cannot open namespace", nspath);
  if (setns(ns, CLONE_NEWNET) < 0) die("cannot enter namespace", nspath);
  close(ns);
  /* the device is looked up in the namespace current when /dev/net/tun is opened */
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("cannot open", "/dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("cannot attach to TAP device", ifname);
  if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) die("cannot set offloads on", ifname);
  if (setns(home, CLONE_NEWNET) < 0) die("cannot return to the hub's namespace", "");
  return fd;
}

static int lookup (const unsigned char *mac) {
  for (int i = 0; i < nmacs; i++) if (memcmp(macs[i], mac, 6) == 0) return mac_port[i];
  return -1;
}

static void learn (const unsigned char *mac, int port) {
  if (mac[0] & 1) return;         /* a group address is never a source */
  for (int i = 0; i < nmacs; i++) if (memcmp(macs[i], mac, 6) == 0) { mac_port[i] = port; return; }
  if (nmacs == MAC_TABLE) return; /* unlearned addresses are flooded, which still works */
  memcpy(macs[nmacs], mac, 6);
  mac_port[nmacs++] = port;
}

static void send_to (int port, const struct frame *f) {
  /* A TAP write injects the frame into the far stack; it does not block. A failure (the far
   * namespace is being deleted) loses this frame only, as a dropped packet would. */
  if (write(fds[port], f->data, f->len) < 0) write_errors++;
  else frames_out++;
}

static void deliver (const struct frame *f) {
  const unsigned char *dst = f->data + VNET_HDR;
  int to = (dst[0] & 1) ? -1 : lookup(dst);
  if (to >= 0) { if (to != f->from) send_to(to, f); return; }
  for (int p = 0; p < nports; p++) if (p != f->from) send_to(p, f);
}

/* Reads every frame waiting on `port`, to leave at `due`; false when the port is gone. */
static int drain (int port, uint64_t due) {
  static unsigned char buf[FRAME_MAX];
  for (;;) {
    ssize_t n = read(fds[port], buf, sizeof buf);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n < VNET_HDR + 14) continue;
    frames_in++;
    bytes_in += (unsigned long long)n;
    learn(buf + VNET_HDR + 6, port);
    if (queued + (size_t)n > QUEUE_MAX) { dropped++; continue; }
    struct frame *f = malloc(sizeof *f + (size_t)n);
    if (f == NULL) { dropped++; continue; }
    f->next = NULL;
    f->due = due;
    f->from = port;
    f->len = (size_t)n;
    memcpy(f->data, buf, (size_t)n);
    if (tail != NULL) tail->next = f; else head = f;
    tail = f;
    queued += (size_t)n;
  }
}

static volatile sig_atomic_t stop;
static void on_term (int sig) { (void)sig; stop = 1; }

int main (int argc, char **argv) {
  if (argc < 4 || (argc - 2) % 2 != 0) {
    fprintf(stderr, "usage: delay-hub DELAY_US NETNS_PATH IFNAME [NETNS_PATH IFNAME]...\n");
    return 2;
  }
  char *end;
  unsigned long long us = strtoull(argv[1], &end, 10);
  if (*end != '\0' || us > 60000000ull) { fprintf(stderr, "delay-hub: DELAY_US must be 0..60000000\n"); return 2; }
  uint64_t delay = us * 1000u;
  nports = (argc - 2) / 2;
  if (nports > MAX_PORTS) { fprintf(stderr, "delay-hub: at most %d ports\n", MAX_PORTS); return 2; }
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) die("cannot open", "/proc/self/ns/net");
  for (int p = 0; p < nports; p++) fds[p] = attach(argv[2 + 2 * p], argv[3 + 2 * p], home);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  printf("ready\n");
  fflush(stdout);

  /* Waking for every frame cost a context switch each (a third of the hub's CPU in perf), so
   * while frames are in flight the hub works in ticks of `tick` ns: it sleeps, reads everything
   * that queued on the ports meanwhile (a TAP queues 1000 frames), and sends what is due within
   * half a tick. A frame read up to a tick after it was sent is stamped half a tick early, so
   * each frame takes the delay give or take half a tick. Idle, it waits in poll for a frame. */
  uint64_t tick = delay / 4 < 1000000u ? delay / 4 : 1000000u;
  struct pollfd pfd[MAX_PORTS + 1];
  for (int p = 0; p < nports; p++) { pfd[p].fd = fds[p]; pfd[p].events = POLLIN; }
  pfd[nports].fd = STDIN_FILENO;
  pfd[nports].events = POLLIN;
  const char *why = "stopped";
  while (!stop) {
    struct timespec ts = { 0, 0 };
    if (head != NULL) {
      ts.tv_nsec = (long)tick;
      nanosleep(&ts, NULL);
      ts.tv_nsec = 0;
    }
    /* busy: only look (timeout 0); idle: wait for the first frame */
    if (ppoll(pfd, (nfds_t)nports + 1, head != NULL ? &ts : NULL, NULL) < 0 && errno != EINTR) die("poll", "");
    if (pfd[nports].revents != 0) { why = "stdin closed"; break; }
    int gone = -1;
    uint64_t stamp = now_ns() + delay - tick / 2;
    for (int p = 0; p < nports; p++) {
      if (pfd[p].revents & (POLLERR | POLLHUP | POLLNVAL)) { gone = p; break; }
      if ((pfd[p].revents & POLLIN) && !drain(p, stamp)) { gone = p; break; }
    }
    if (gone >= 0) { why = "a port went away"; break; }
    uint64_t t = now_ns() + tick / 2;
    while (head != NULL && head->due <= t) {
      struct frame *f = head;
      head = f->next;
      if (head == NULL) tail = NULL;
      queued -= f->len;
      deliver(f);
      free(f);
    }
  }
  fprintf(stderr, "delay-hub: %s; frames in %llu (%llu bytes), out %llu, dropped %llu, write errors %llu\n",
    why, frames_in, bytes_in, frames_out, dropped, write_errors);
  return 0;
}
