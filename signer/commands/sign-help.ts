export const signHelp = `NAME
    imgdist-sign sign - add an index key's signature to index.yaml, or renew it

SYNOPSIS
    imgdist-sign sign --index index.yaml --key KEY [--key KEY...] [--expires DURATION]
                      [--root root.yaml]
    imgdist-sign sign --index index.yaml --key KEY [--key KEY...] --renew [--force]
                      [--expires DURATION] [--root root.yaml]

DESCRIPTION
    Signs the canonical JSON (RFC 8785) of the index's "signed" part with each KEY and stores
    the signatures in index.yaml (replaced atomically). Co-signing: each endorser runs the same
    command on the same file in turn; signatures already there are kept and stay valid, because
    signing never changes the content.

    --expires changes the content (the index's "expires"), so without --renew it is only
    allowed while the index has no signatures yet, i.e. for the first signer after add or
    revoke. A later signer passing --expires gets a usage error instead of silently
    invalidating the others' signatures.

    --renew gives a signed index a later expiry without adding or revoking anything. Agents
    refuse an index past its "expires", and the expiry cannot change under the signatures, so
    a renewal is the next version of the same content: "version" goes up by one, "issued"
    becomes now, "expires" now + DURATION, and the existing signatures are dropped (they
    covered the previous version); then each KEY signs it as above, and index.yaml is replaced
    once, atomically. Without --expires the renewed index is valid for as long as the previous
    version was (from its "issued" to its "expires"), so a routine renewal keeps the period
    the endorsers chose; give --expires to choose another. Only the first signer passes
    --renew: the co-signers then sign the new version without it, up to the threshold, and it
    is published like a release (the index server takes it because the version is higher).
    An image's own "expires" (add --expires) is not changed: add the image again for that.

    A co-signer passing --renew too would make yet another version and drop the first
    signer's fresh signature, so --renew refuses (exit 2, nothing written) an index that is
    partially signed and has not expired: it has at least one signature and, with --root,
    fewer valid signatures by the root's index keys than the index threshold (a signature
    that does not verify, e.g. one left from an earlier version, does not count) or, without
    --root (the threshold is unknown), it was issued less than 24 hours ago. Co-sign it
    without --renew; if a new version really is intended, add --force. A fully signed
    index (with --root), one issued 24 hours ago or more (without), or an expired one is
    renewed as described above.

OPTIONS
    --index FILE         the index to sign (required)
    --key KEY            secret key file (NAME.key from keygen); repeatable (required)
    --renew              first signer only: make the next version of the index with a new
                         expiry, dropping the previous signatures, then sign it
    --force              with --renew: renew even a partially signed index that has not
                         expired (see above); overrides that check only
    --expires DURATION   set the index expiry to now + DURATION (90s, 15m, 12h, 14d, 2w):
                         the first signer of an unsigned index, or with --renew
                         (default: leave "expires" as it is; with --renew, the previous
                         version's validity period)
    --root FILE          check that each KEY is an index key of this root and report how
                         many of the threshold are now present; with --renew, the threshold
                         decides whether the index is partially signed (default: no check)
    -h, --help           show this help

EXAMPLES
    # a release: the first signer sets the expiry, the second co-signs
    imgdist-sign sign --index index.yaml --key alice.key --expires 14d
    imgdist-sign sign --index index.yaml --key bob.key --root root.yaml

    # renewal, before "expires", of the index as last published: valid 14 days from now;
    # bob co-signs the new version, then it is checked and published
    imgdist-sign sign --index index.yaml --key alice.key --renew --expires 14d --root root.yaml
    imgdist-sign sign --index index.yaml --key bob.key --root root.yaml
    imgdist-sign verify --root root.yaml index.yaml
    imgdist-sign publish --server https://index.example.org --index index.yaml

EXIT STATUS
    0  signed            2  usage error (not a secret key, --expires on a signed index
                            without --renew, a key outside the root's index role, an
                            unreadable or invalid index, --renew on an index that has
                            no validity period to keep and no --expires, --renew without
                            --force on a partially signed index that has not expired,
                            --force without --renew)
`
