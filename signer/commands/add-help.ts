export const addHelp = `NAME
    imgdist-sign add - hash an image, write its .torrent and add it to index.yaml

SYNOPSIS
    imgdist-sign add IMAGE_FILE --index index.yaml --id ID --version V --disk-format F
                     [--name NAME] [--container-format bare] [--os linux] [--arch x86_64]
                     [--min-disk GB] [--min-ram MB] [--property KEY=VALUE]...
                     [--web-seed URL]... [--tracker URL]... [--expires DURATION]
                     [--index-expires DURATION] [--torrent-dir DIR] [--piece-length BYTES]
                     [--hash-threads 1|2] [--catalogue NAME | --root root.yaml]

DESCRIPTION
    Reads IMAGE_FILE once, computing its sha512, its size and the sha1 of every torrent piece,
    then writes a v1 single-file torrent named after ID to DIR/<infoHash>.torrent and adds the
    image to index.yaml, or replaces the entry that has the same ID (a re-added ID is no
    longer revoked). The entry's "torrent" field is torrents/<infoHash>.torrent, relative to
    the index URL, so DIR should be the "torrents" folder the index server publishes.

    The index version goes up by one and its existing signatures are dropped, because they
    covered the old content: run "imgdist-sign sign" afterwards with a threshold of index keys.
    If index.yaml does not exist it is created (version 1, expiring after --index-expires),
    for the catalogue named by --catalogue or by --root.

    Progress (bytes, rate, ETA) is shown on stderr when stderr is a terminal.

OPTIONS
    --index FILE             the index to edit or create (required)
    --id ID                  image id, [a-z0-9][a-z0-9._-]*, at most 128 chars (required);
                             also the torrent's file name
    --version V              the image's release version, free text (required)
    --disk-format F          Glance disk_format (required): ami, ari, aki, vhd, vhdx, vmdk,
                             raw, qcow2, vdi, iso, ploop
    --name NAME              human-readable image name (default: the id)
    --container-format F     Glance container_format (default bare)
    --os OS                  operating system (default linux)
    --arch ARCH              architecture (default x86_64)
    --min-disk GB            minimum disk in GB (default 0)
    --min-ram MB             minimum RAM in MB (default 0)
    --property KEY=VALUE     a Glance property for the image; repeatable. Names Glance
                             reserves (core image fields such as visibility, os_glance*,
                             imgdist_*) and values over 255 characters are refused (exit 2):
                             every Glance site would refuse them after the download
    --web-seed URL           HTTP(S) web seed (BEP 19 url-list, and the entry's webSeeds);
                             repeatable. A URL ending in "/" gets the id appended by
                             clients, e.g. https://index.example.org/v1/images/
    --tracker URL            tracker announce URL; repeatable (default: none, the agents
                             find peers through the DHT and web seeds)
    --expires DURATION       this image's own expiry, from now: 90s, 15m, 12h, 14d, 2w
                             (default: none, the image lives as long as the index)
    --index-expires DURATION set the index expiry to now + DURATION (default: unchanged;
                             30d for a new index). "sign --expires" can set it too;
                             "sign --renew" renews a signed index without hashing.
    --torrent-dir DIR        where to write the .torrent (default: "torrents" beside FILE)
    --piece-length BYTES     torrent piece size, a power of two from 16384 to 16777216
                             (default: chosen from the size, 1 MiB..16 MiB, ~1500 pieces)
    --hash-threads 1|2       2 hashes sha512 and the pieces on two cores in parallel
                             (default 2 when the machine has two or more cores)
    --catalogue NAME         catalogue name when creating index.yaml
    --root FILE              take the catalogue name from this root.yaml when creating
                             index.yaml (and check an existing index belongs to it)
    -h, --help               show this help

EXAMPLES
    imgdist-sign add alma9-20250101.qcow2 --index index.yaml --id alma9-20250101 \\
        --name "AlmaLinux 9" --version 2025.01.01 --disk-format qcow2 \\
        --min-disk 10 --min-ram 1024 --property os_distro=almalinux \\
        --web-seed https://images.example.org/v1/images/ --root root.yaml
    imgdist-sign sign --index index.yaml --key alice.key --expires 14d

EXIT STATUS
    0  added             2  usage error (bad flag, unreadable file, invalid entry, bad index)
`
