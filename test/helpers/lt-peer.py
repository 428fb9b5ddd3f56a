#!/usr/bin/python3
"""libtorrent-rasterbar (Debian python3-libtorrent) peer for the libtorrent interop tests
(test/agent-libtorrent.test.ts, test/swarm-pex-libtorrent.test.ts).

usage: lt-peer.py seed|get FILE.torrent DIR PORT [UPLOAD_LIMIT [HOST:PORT ...]]
Listens on 127.0.0.1:PORT, with ut_pex on (libtorrent's default). UPLOAD_LIMIT caps the torrent's
upload in bytes/s (0, the default: none); each HOST:PORT is dialled at start. Prints "DONE" on
stdout once it has every piece (at once for a seed), and one line per peer as it first appears,
"PEER ip:port SOURCES" (libtorrent's peer_info.source bits: tracker 1, dht 2, pex 4, lsd 8,
resume 16, incoming 32); then keeps seeding until SIGTERM or SIGKILL. Prints the alerts that
explain a swarm that never forms (tracker errors, refused or dropped peers) so that a failing
test shows libtorrent's side.

bench/lt-peer.py's settings, kept apart so that the bench script can change without changing the
tests, plus the logging.
"""
import signal
import sys

import libtorrent as lt

mode, tfile, d, port = sys.argv[1:5]
limit = int(sys.argv[5]) if len(sys.argv) > 5 else 0
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
# per torrent: the session-wide limit exempts peers on the local network, as every peer here is
h.set_upload_limit(limit)
for addr in sys.argv[6:]:
    host, _, pt = addr.rpartition(':')
    h.connect_peer((host, int(pt)))
stop = False


def bye(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, bye)
signal.signal(signal.SIGINT, bye)
done = False
seen = set()
while not stop:
    s.wait_for_alert(250)
    for a in s.pop_alerts():
        if isinstance(a, (lt.peer_disconnected_alert, lt.peer_error_alert, lt.tracker_error_alert,
                          lt.tracker_reply_alert, lt.peer_blocked_alert, lt.hash_failed_alert, lt.torrent_error_alert)):
            print(f'{type(a).__name__}: {a.message()}', file=sys.stderr, flush=True)
    for pi in h.get_peer_info():
        key = f'{pi.ip[0]}:{pi.ip[1]}'
        if key not in seen:
            seen.add(key)
            print(f'PEER {key} {pi.source}', flush=True)
    if not done and h.status().is_seeding:
        done = True
        print('DONE', flush=True)
s.pause()
