#!/usr/bin/python3
"""libtorrent-rasterbar (Debian python3-libtorrent) peer for bench:swarm.

usage: lt-peer.py seed|get FILE.torrent DIR LISTEN_IP PORT [DONEFILE]
A downloader appends DIR to DONEFILE once it has the whole file, then keeps seeding; both run
until SIGTERM. DHT, LSD, UPnP, NAT-PMP and uTP are off (the swarm is TCP + one HTTP tracker).
"""
import signal
import sys
import time

import libtorrent as lt

mode, tfile, d, ip, port = sys.argv[1:6]
donefile = sys.argv[6] if len(sys.argv) > 6 else None
s = lt.session({
    'listen_interfaces': f'{ip}:{port}', 'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
    'enable_natpmp': False, 'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'allow_multiple_connections_per_ip': True,
})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(tfile)
p.save_path = d
if mode == 'seed':
    p.flags |= lt.torrent_flags.seed_mode
h = s.add_torrent(p)
stop = False


def bye(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, bye)
signal.signal(signal.SIGINT, bye)
done = mode == 'seed'
while not stop:
    if not done and h.status().is_seeding:
        done = True
        if donefile:
            with open(donefile, 'a') as f:
                f.write(d + '/\n')
    time.sleep(0.05)
s.pause()
