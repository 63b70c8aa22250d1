"""Create and delete test buckets (obstore has no bucket calls): signed S3 requests.

A bucket is emptied with obstore, then deleted with a DeleteBucket request signed by AWS
Signature Version 4, as any S3-compatible server expects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import urllib.request
import uuid
from urllib.parse import urlsplit

from _s3.server import S3Server


def new_name() -> str:
    return f"mytest-{uuid.uuid4().hex[:16]}"


def _sign(server: S3Server, method: str, path: str) -> urllib.request.Request:
    now = dt.datetime.now(dt.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host = urlsplit(server.endpoint).netloc
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "",
                           *(f"{k}:{headers[k]}" for k in sorted(headers)), "",
                           signed, payload])
    scope = f"{day}/{server.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{server.secret_key}".encode()
    for part in (day, server.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"{server.endpoint}{path}", method=method,
                                     headers={k: v for k, v in headers.items() if k != "host"})
    request.add_header("Authorization",
                       f"AWS4-HMAC-SHA256 Credential={server.access_key}/{scope}, "
                       f"SignedHeaders={signed}, Signature={signature}")
    return request


def create(server: S3Server, name: str) -> None:
    with urllib.request.urlopen(_sign(server, "PUT", f"/{name}"), timeout=30):
        pass


def delete(server: S3Server, name: str) -> None:
    """Delete every object of the bucket, then the bucket."""
    import obstore

    store = client(server, name)
    for chunk in obstore.list(store):
        obstore.delete(store, [meta["path"] for meta in chunk])
    with urllib.request.urlopen(_sign(server, "DELETE", f"/{name}"), timeout=30):
        pass


def exists(server: S3Server, name: str) -> bool:
    import urllib.error

    try:
        with urllib.request.urlopen(_sign(server, "HEAD", f"/{name}"), timeout=30):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


def client(server: S3Server, bucket: str):  # type: ignore[no-untyped-def]
    """An obstore client of the bucket, for tests that look at (or tamper with) objects."""
    from obstore.store import S3Store

    return S3Store(bucket, endpoint=server.endpoint, region=server.region,
                   access_key_id=server.access_key, secret_access_key=server.secret_key,
                   client_options={"allow_http": True})
