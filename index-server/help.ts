/** Man-page style help of imgdist-index and its commands. */

export const MAIN_HELP = `imgdist-index - publish a signed image catalogue, seed its images, show the fleet

USAGE
  imgdist-index init   --data-dir DIR --root ROOT.yaml [--force]
  imgdist-index serve  --data-dir DIR [--listen HOST:PORT] [--public-url URL] [--config FILE]
                       [--no-dht] [--no-seed] [--torrent-port N]
  imgdist-index import --data-dir DIR --id ID [--torrent FILE.torrent] [--index INDEX.yaml]
                       IMAGE-FILE
  imgdist-index sites  add NAME PUBKEY|FILE.pub [--replace] --data-dir DIR
  imgdist-index sites  list --data-dir DIR
  imgdist-index sites  remove NAME --data-dir DIR
  imgdist-index help [COMMAND] | --version

COMMANDS
  init     Verify a self-signed root (threshold of its own root keys, not expired) and install
           it as the trusted root of DIR (DIR/root/<version>.yaml). Later roots are published
           with PUT /v1/root.yaml and must follow the rotation rule.
  serve    Run the server: catalogue endpoints, web seed, origin BitTorrent seed, tracker,
           agent reports, fleet page and metrics. SIGTERM/SIGINT drain and exit 0; SIGHUP
           rescans DIR for image files and torrents placed by hand.
  import   Verify an image file copied by hand against the current signed index (sha512 and
           size of entry ID) and copy it into DIR/images/ (and, with --torrent, its .torrent
           into DIR/torrents/ after checking its info hash). With --index, against a signed
           index not yet published (staging). Safe while the server runs.
  sites    Manage the ed25519 keys that agents sign their reports with (DIR/sites.yaml).
           PUBKEY is "ed25519:<base64>" or a file holding it. Safe while the server runs.

EXIT STATUS
  0 success; 1 a verification failure (e.g. SIGNATURE_INVALID, HASH_MISMATCH), a refusal
  (ALREADY_INITIALISED, SITE_EXISTS, CONFLICT, STATE_LOCKED) or a runtime error (e.g.
  LISTEN_FAILED: the --listen address is in use; NO_ROOT: DIR has no root yet); 2 bad usage:
  a wrong command, option or argument, a file named on the command line that cannot be read
  (IO_ERROR), an invalid site name or key (KEY_INVALID), a site or image ID that is not there
  (NOT_FOUND), an invalid (or unreadable) config.

Run "imgdist-index help serve" for the server's options and endpoints.
`

export const SERVE_HELP = `imgdist-index serve - the index server

USAGE
  imgdist-index serve --data-dir DIR [--listen HOST:PORT] [--public-url URL] [--config FILE]
                      [--no-dht] [--no-seed] [--torrent-port N]

OPTIONS
  --data-dir DIR       data directory (after "imgdist-index init"); or dataDir in the config
  --listen HOST:PORT   HTTP address (default 0.0.0.0:8080)
  --public-url URL     URL agents use to reach this server, e.g. https://images.example.org.
                       Used for the tracker and web seed added to served .torrent files and
                       for the seeder's own announce; default: the address of each request
  --config FILE        YAML config (see deploy/index.example.yaml); flags override it
  --no-dht             do not join the BitTorrent DHT (the built-in tracker still works)
  --no-seed            do not run the origin BitTorrent seed (web seed and tracker only)
  --torrent-port N     TCP port for BitTorrent peers (default 6881; 0: any free port)

ENDPOINTS
  GET  /v1/root.yaml, /v1/root/<N>.yaml, /v1/index.yaml (ETag, If-None-Match -> 304)
  PUT  /v1/index.yaml, /v1/root.yaml     Content-Type: application/yaml; accepted only if the
                                          document verifies against the current root and
                                          raises the version
  GET|HEAD /v1/images/<id>               image bytes, Range (BEP 19 web seed)
  PUT  /v1/images/<id>                   streaming upload, kept only if sha512 and size match
  GET|PUT /v1/torrents/<infoHash>.torrent
  GET  /announce, /scrape                built-in tracker (catalogue's info hashes only)
  POST /v1/reports                       signed agent reports (sites registered with "sites add")
  GET  /v1/fleet, /                      fleet as JSON and as an HTML page
  GET  /healthz, /metrics                health as JSON, Prometheus metrics

EXPIRY
  A root or index past its expires is still served, but agents refuse it: the endorsers (for
  a root, the root key holders) must publish a newer one. The server logs a warning when the
  served document expires (and at start-up if it already has), /healthz lists it in "expired"
  (still HTTP 200), the fleet page shows each date (a warning from 3 days before it), and
  imgdist_index_catalogue_expires_seconds{document} gives the date to alert on before it falls.

EXIT STATUS
  0 after SIGTERM/SIGINT and a drain; 1 a runtime error (LISTEN_FAILED: an address in use;
  NO_ROOT: DIR has no root yet, run "imgdist-index init"); 2 bad usage or an invalid (or
  unreadable) config.

REFUSALS
  4xx with JSON {code, message}: 400 SCHEMA_INVALID YAML_INVALID ALIAS_LIMIT TYPE_UNKNOWN
  DUPLICATE_ID UNSAFE_NAME TORRENT_INVALID BAD_REQUEST, 403 SIGNATURE_INVALID SIGNATURE_MISSING
  THRESHOLD_NOT_MET SITE_UNKNOWN, 404 NOT_FOUND, 409 ROLLBACK VERSION_GAP VERSION_NOT_RAISED
  NAME_MISMATCH, 413 TOO_LARGE PARSE_LIMIT, 415 UNSUPPORTED_MEDIA_TYPE, 422 EXPIRED
  HASH_MISMATCH, 429 RATE_LIMITED; 503 SHUTTING_DOWN (a held GET of index.yaml at shutdown,
  with Retry-After: 1). A refused publish changes nothing on disk. Uploaded
  documents are parsed and verified in a worker thread (at most 768 MiB of heap and 30 s, set
  by limits.uploadCheckMemory and limits.uploadCheckTime in the config; beyond either,
  PARSE_LIMIT), so the server answers other requests meanwhile.
`

export const INIT_HELP = `imgdist-index init - install the trusted root

USAGE
  imgdist-index init --data-dir DIR --root ROOT.yaml [--force]

  Verifies ROOT.yaml (self-signed by a threshold of its root keys, not expired) and installs it
  as DIR/root/<version>.yaml. Refuses if DIR already has a root or an index, unless --force.

  --force  Replace the catalogue: the old root chain, index.yaml and verification markers are
           moved (not deleted) to DIR/replaced/<time>/, and the new catalogue starts with no
           index. Images and torrents stay and are served only once the new index lists them
           (re-hashed first). Refused while a server runs on DIR; a crash part-way is finished
           at the next start.

EXIT STATUS
  0 installed; 1 ROOT.yaml fails verification (e.g. SIGNATURE_INVALID, EXPIRED, TOO_LARGE), DIR
  already has a catalogue (ALREADY_INITIALISED), or a server runs on DIR (STATE_LOCKED);
  2 bad usage, or ROOT.yaml cannot be read (IO_ERROR).
`

export const IMPORT_HELP = `imgdist-index import - place an image file copied by hand

USAGE
  imgdist-index import --data-dir DIR --id ID [--torrent FILE.torrent] [--index INDEX.yaml]
                       IMAGE-FILE

  Hashes IMAGE-FILE and copies it to DIR/images/ID only if its sha512 and size are those that
  the current signed index gives for ID. With --torrent, also checks the .torrent's info hash
  and length against the index and stores it in DIR/torrents/. A running server picks both up
  at its next rescan (seeding.rescanInterval) or at once on SIGHUP.

  --index INDEX.yaml  Stage a release: check against this signed index (threshold of index
                      keys of the server's current root, not expired) instead of the published
                      one. Publish INDEX.yaml afterwards (PUT /v1/index.yaml) and the origin
                      seeds the image at once, while agents watching the index learn of it
                      within a round trip. Refused if the published index lists ID with other
                      bytes.

EXIT STATUS
  0 stored; 1 the file does not match (HASH_MISMATCH; nothing is copied), INDEX.yaml fails
  verification, no index is published yet, or the published index serves other bytes as ID
  (CONFLICT); 2 bad usage, a file that cannot be read (IO_ERROR), or an ID the index does
  not list (NOT_FOUND).
`

export const SITES_HELP = `imgdist-index sites - site keys for signed agent reports

USAGE
  imgdist-index sites add NAME PUBKEY|FILE.pub [--replace] --data-dir DIR
  imgdist-index sites list --data-dir DIR
  imgdist-index sites remove NAME --data-dir DIR

  NAME is the site name agents put in their reports ([a-z0-9][a-z0-9._-]*). PUBKEY is the
  agent's public key "ed25519:<base64>", or a file containing it. Reports from unregistered
  sites, or not signed by the registered key, are refused (403).

  --replace  change the key of a site already registered (without it, SITE_EXISTS)

EXIT STATUS
  0 done; 1 NAME is already registered (SITE_EXISTS); 2 bad usage: DIR does not exist, NAME
  or PUBKEY is invalid (KEY_INVALID), FILE.pub cannot be read (IO_ERROR), or "remove" names a
  site that is not registered (NOT_FOUND).
`

export const HELP: Record<string, string> = { serve: SERVE_HELP, init: INIT_HELP, import: IMPORT_HELP, sites: SITES_HELP }
