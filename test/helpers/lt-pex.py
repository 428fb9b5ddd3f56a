#!/usr/bin/python3
"""libtorrent-rasterbar (Debian python3-libtorrent) peer for test/swarm-pex-libtorrent.test.ts.

usage: lt-pex.py seed|get FILE.torrent DIR PORT UPLOAD_LIMIT [HOST:PORT ...]
Listens on 127.0.0.1:PORT with ut_pex on (libtorrent's default), uploads at most UPLOAD_LIMIT
bytes/s (0 = unlimited) and dials each HOST:PORT given. Prints, as they appear, one line per
connected peer: "PEER ip:port SOURCES" where SOURCES is libtorrent's peer_info.source bits
(tracker 1, dht 2, pex 4, lsd 8, resume 16, incoming 32), and "DONE" once it has every piece.
Runs until SIGTERM.
"""
import signal
import sys
import time

import libtorrent as lt

mode, tfile, d, port, limit = sys.argv[1:6]
s = lt.session({
    'listen_interfaces': f'127.0.0.1:{port}', 'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
    'enable_natpmp': False, 'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    # every peer here is 127.0.0.1 (see lt-peer.py)
    'allow_multiple_connections_per_ip': True,
    'alert_mask': lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification,
})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(tfile)
p.save_path = d
if mode == 'seed':
    p.flags |= lt.torrent_flags.seed_mode
h = s.add_torrent(p)
# per torrent: the session-wide limit exempts peers on the local network, as every peer here is
h.set_upload_limit(int(limit))
for addr in sys.argv[6:]:
    host, _, pt = addr.rpartition(':')
    h.connect_peer((host, int(pt)))

stop = False


def bye(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, bye)
signal.signal(signal.SIGINT, bye)
seen = set()
done = False
while not stop:
    s.wait_for_alert(250)
    for a in s.pop_alerts():
        if isinstance(a, (lt.peer_disconnected_alert, lt.peer_error_alert, lt.peer_blocked_alert, lt.torrent_error_alert)):
            print(f'{type(a).__name__}: {a.message()}', file=sys.stderr, flush=True)
    for pi in h.get_peer_info():
        key = f'{pi.ip[0]}:{pi.ip[1]}'
        if key not in seen:
            seen.add(key)
            print(f'PEER {key} {pi.source}', flush=True)
    if not done and h.status().is_seeding:
        done = True
        print('DONE', flush=True)
    time.sleep(0.05)
s.pause()
