export const VERSION = '0.1.0'

export const topHelp = `NAME
    imgdist-sign - sign and publish a catalogue of virtual-machine images

SYNOPSIS
    imgdist-sign COMMAND [OPTIONS] [ARGS]
    imgdist-sign COMMAND --help
    imgdist-sign --help | --version

DESCRIPTION
    imgdist distributes endorsed VM images to cloud sites over BitTorrent. imgdist-sign is
    the endorser's tool: it makes keys, writes the catalogue's root.yaml (who may sign) and
    index.yaml (which images, with their sha512 and .torrent), signs them (several endorsers
    may co-sign up to a threshold), verifies them exactly as the sites' agents will, and
    uploads them to an imgdist-index server. Signatures are ed25519 over the canonical JSON
    (RFC 8785) of each document's "signed" part.

COMMANDS
    keygen      --out NAME                          make NAME.key (secret) and NAME.pub
    init-root   --name C --root-key P --index-key P write an unsigned root.yaml
                [--from OLD_ROOT]                   (or the next version, for key rotation)
    sign-root   --key KEY ROOT_FILE                 add a root key's signature
    add         IMAGE_FILE --index F --id ID ...    hash an image, write its .torrent, add
                                                    it to the index (drops signatures)
    revoke      --index F --id ID --reason TEXT     withdraw an image (drops signatures)
    sign        --index F --key KEY [--expires D]   add an index key's signature (co-sign)
                [--renew]                           or renew: next version, later expiry
    verify      --root ROOT DOC                     check an index or a new root
    publish     --server URL --index F [--root F]   upload to an imgdist-index server, with
                [--image ID=FILE]...                the torrents and the images' bytes
    help        [COMMAND]                           show this help, or a command's

    Durations are written 90s, 15m, 12h, 14d or 2w; times as RFC 3339 UTC.
    Public keys are .pub files or inline "ed25519:<base64>" strings.

OPTIONS
    -h, --help      show this help (or, after a command, that command's help)
    -V, --version   print the version

EXAMPLES
    # once: keys and the root (one root key, three index keys, any two must sign)
    imgdist-sign keygen --out root
    for k in alice bob carol; do imgdist-sign keygen --out $k; done
    imgdist-sign init-root --name cern-images --root-key root.pub --index-key alice.pub \\
        --index-key bob.pub --index-key carol.pub --index-threshold 2 --out root.yaml
    imgdist-sign sign-root --key root.key root.yaml

    # each release: add, two endorsers sign, check, publish
    imgdist-sign add alma9.qcow2 --index index.yaml --root root.yaml --id alma9-20250101 \\
        --version 2025.01.01 --disk-format qcow2
    imgdist-sign sign --index index.yaml --key alice.key --expires 14d
    imgdist-sign sign --index index.yaml --key bob.key
    imgdist-sign verify --root root.yaml index.yaml
    imgdist-sign publish --server https://index.example.org --index index.yaml \\
        --image alma9-20250101=alma9.qcow2

    # before the index expires: renew it (next version, same images), co-sign, publish
    imgdist-sign sign --index index.yaml --key alice.key --renew --expires 14d
    imgdist-sign sign --index index.yaml --key bob.key
    imgdist-sign publish --server https://index.example.org --index index.yaml

EXIT STATUS
    0   success
    1   verification failure: the document is refused (verify), or the server refused it
        (publish); stderr says why, with a code such as SIGNATURE_INVALID,
        THRESHOLD_NOT_MET, EXPIRED, ROLLBACK, SCHEMA_INVALID
    2   usage error: bad flags, missing or unreadable file, a public key where a secret key
        belongs, an input file that is not valid YAML or not the expected document, or an
        index server that cannot be reached

    Errors are one line on stderr: "imgdist-sign: CODE: what is wrong", as for
    imgdist-index and imgdist-agent.

ENVIRONMENT
    IMGDIST_DEBUG=1   also print the stack trace of an error (for bug reports)

SEE ALSO
    imgdist-index(1), imgdist-agent(1), DESIGN.md
`
