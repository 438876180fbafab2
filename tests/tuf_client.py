"""The reference TUF client (python-tuf's ngclient, unchanged) reads Racklet's boot
repository: it starts from root version 1, follows the root chain, verifies every role and
downloads targets, trusting only the control plane's certificate.

usage: tuf_client.py BASE_URL TRUSTED_ROOT CERT_PEM TARGET...
Prints one JSON object: the versions it trusts and, per target, its length, the SHA-256 of
the downloaded bytes and its custom metadata. Exits non-zero on any refusal.
"""

import hashlib
import json
import os
import shutil
import ssl
import sys
import tempfile
import urllib.error
import urllib.request

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface


class PinnedFetcher(FetcherInterface):
    """HTTPS with one trusted certificate and no system roots."""

    def __init__(self, cafile):
        self.context = ssl.create_default_context(cafile=cafile)

    def _fetch(self, url):
        try:
            response = urllib.request.urlopen(url, context=self.context, timeout=30)
        except urllib.error.HTTPError as e:
            raise DownloadHTTPError(str(e), e.code) from e
        return iter(lambda: response.read(65536), b"")


def main():
    base, root, cert, *targets = sys.argv[1:]
    work = tempfile.mkdtemp(prefix="racklet-tuf-")
    try:
        metadata_dir = os.path.join(work, "metadata")
        target_dir = os.path.join(work, "targets")
        os.makedirs(metadata_dir)
        os.makedirs(target_dir)
        with open(root, "rb") as f:
            trusted_root = f.read()
        updater = Updater(
            metadata_dir=metadata_dir,
            metadata_base_url=base + "metadata/",
            target_base_url=base + "targets/",
            target_dir=target_dir,
            fetcher=PinnedFetcher(cert),
            bootstrap=trusted_root,
        )
        updater.refresh()
        out = {"targets": {}}
        for name in targets:
            info = updater.get_targetinfo(name)
            if info is None:
                raise SystemExit(f"no target {name}")
            path = updater.download_target(info)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out["targets"][name] = {
                "length": info.length,
                "sha256": digest,
                "custom": info.custom,
            }
        trusted = updater._trusted_set  # versions only; no public accessor
        out["versions"] = {
            "root": trusted.root.version,
            "targets": trusted.targets.version,
            "snapshot": trusted.snapshot.version,
            "timestamp": trusted.timestamp.version,
        }
        print(json.dumps(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
