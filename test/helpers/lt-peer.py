#!/usr/bin/python3
"""libtorrent-rasterbar (Debian python3-libtorrent) peer for test/agent-libtorrent.test.ts.

usage: lt-peer.py seed|get FILE.torrent DIR PORT
Listens on 127.0.0.1:PORT. Prints "DONE" on stdout once it has every piece (at once for a seed),
then keeps seeding until SIGTERM or SIGKILL. Prints the alerts that explain a swarm that never
forms (tracker errors, refused or dropped peers) so that a failing test shows libtorrent's side.

bench/lt-peer.py's settings, kept apart so that the bench script can change without changing the
test, plus the logging.
"""
import signal
import sys

import libtorrent as lt

mode, tfile, d, port = sys.argv[1:5]
s = lt.session({
    'listen_interfaces': f'127.0.0.1:{port}', 'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
    'enable_natpmp': False, 'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    # Every peer here is 127.0.0.1. With the default (False), libtorrent dials itself (the tracker
    # lists it), finds out, and bans the address: every later peer on loopback is then refused as
    # "peer banned", the agent included.
    'allow_multiple_connections_per_ip': True,
    'alert_mask': lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification
    | lt.alert.category_t.tracker_notification | lt.alert.category_t.status_notification,
})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(tfile)
p.save_path = d
if mode == 'seed':
    # trusts the file is whole; libtorrent still checks each piece's sha1 before it first sends it
    p.flags |= lt.torrent_flags.seed_mode
h = s.add_torrent(p)
stop = False


def bye(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, bye)
signal.signal(signal.SIGINT, bye)
done = False
while not stop:
    s.wait_for_alert(500)
    for a in s.pop_alerts():
        if isinstance(a, (lt.peer_disconnected_alert, lt.peer_error_alert, lt.tracker_error_alert,
                          lt.tracker_reply_alert, lt.peer_blocked_alert, lt.hash_failed_alert, lt.torrent_error_alert)):
            print(f'{type(a).__name__}: {a.message()}', file=sys.stderr, flush=True)
    if not done and h.status().is_seeding:
        done = True
        print('DONE', flush=True)
s.pause()
