"""One Settings object, read from KFP_BACKEND_* environment variables and overridden by CLI flags.

Every field here is documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from kfp_backend import __version__
from kfp_backend.build_info import UNKNOWN, checkout_commit

ENV_PREFIX = "KFP_BACKEND_"
AUTH_MODES = ("auto", "required", "disabled")
STEP_ISOLATION_MODES = ("auto", "namespace", "rewrite", "bwrap")
STEP_NETWORKS = ("host", "none")
STEP_WRAPPERS = ("auto", "kfp-step", "python", "shell")
STEP_BACKENDS = ("local", "celery")
CELERY_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
# With the celery backend and max_parallel_steps 0: steps in flight per executor (the workers' threads bound
# what runs at once; the rest wait in the broker's queues).
CELERY_MAX_PARALLEL_STEPS = 10000
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
# One label of a host name (lower case); `_` is accepted, as resolvers and many internal names use it.
_HOST_LABEL = re.compile(r"[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?")
# The smallest step log cap (but 0, no cap): room for a head and a tail beside the line marking the cut.
STEP_LOG_MIN_MAX_BYTES = 4096
# Numeric settings and the smallest value each accepts (a port of 0 asks the system for a free one).
_MINIMUMS: dict[str, float] = {
    "port": 0, "threads": 1, "workers": 0, "max_upload_bytes": 1, "max_request_bytes": 1, "max_artifact_read_bytes": 1,
    "url_fetch_timeout_seconds": 0.001,
    "max_parallel_steps": 0, "driver_heartbeat_seconds": 0.001, "driver_stale_seconds": 1,
    "step_scratch_ttl_seconds": 0, "step_log_max_bytes": 0, "step_envs_timeout_seconds": 1,
    "scheduler_poll_seconds": 0.001, "scheduler_lease_seconds": 0.001, "scheduler_heartbeat_seconds": 0.001,
    "worker_heartbeat_seconds": 0.001, "worker_lost_seconds": 0.01, "dispatch_poll_seconds": 0.001,
    "step_log_upload_seconds": 0.01,
}


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    data_dir: Path = Path(".kfp-backend")
    # Empty means "SQLite file inside data_dir".
    database_url: str = ""
    auto_migrate: bool = True
    threads: int = 16
    # `serve` with N >= 1 web workers: the API under gunicorn in N processes, the executor and the scheduler
    # each in a process of its own (kfp_backend/processes/). 0: one process, waitress (the default).
    workers: int = 0
    log_level: str = "INFO"
    max_upload_bytes: int = 32 << 20
    # The WSGI server's hard cap on a request body. Below it the application answers oversize bodies
    # with a JSON error; above it the WSGI server refuses them itself (a plain-text 413).
    max_request_bytes: int = 1 << 30
    # ReadArtifact answers an artifact's bytes base64-encoded inside JSON, streamed from the store, but a
    # client (the kfp SDK) holds the answer whole: larger artifacts are refused with a 400.
    max_artifact_read_bytes: int = 16 << 20
    url_fetch_timeout_seconds: float = 30.0
    # Where step artifacts (and, with s3, finished steps' logs) are stored: `file:///abs/path` or
    # `s3://bucket/prefix` (boto3, `pip install kfp-backend[s3]`, the usual AWS credential chain);
    # empty: <data dir>/artifacts. `s3_endpoint_url` names an S3-compatible service (MinIO, Ceph).
    artifact_store: str = ""
    s3_endpoint_url: str = ""
    # healthz's `commit_sha`; empty: the git checkout's HEAD when the package runs from one, else "unknown".
    commit_sha: str = ""
    # healthz's `tag_name`; empty: the package version.
    tag_name: str = ""
    default_service_account: str = "pipeline-runner"
    auto_update_default_version: bool = True
    # Execution. The executor runs inside `serve` unless turned off (an API-only replica).
    executor_enabled: bool = True
    # Steps running at once across all runs of this process; 0 means twice the number of cores.
    max_parallel_steps: int = 0
    # How steps get private /tmp/inputs, /tmp/outputs... and what else they may see: "auto" (multi-user
    # mode: "bwrap"; single-user mode: a private mount namespace when the kernel allows it, else path
    # rewriting), "namespace" (required), "rewrite", or "bwrap": the multi-user sandbox (bubblewrap, the
    # steps as `step_user`, in their own PID namespace, the data dir hidden; see docs/auth.md).
    step_isolation: str = "auto"
    # The bwrap sandbox: the user steps run as (a name, a uid or uid:gid; empty: `kfp-runner` when that
    # user exists, else `nobody`), the bubblewrap program, the steps' network ("host": the host's, shared;
    # "none": a network namespace of their own, loopback only) and more paths to hide from steps besides
    # the data dir and the SQLite database (comma-separated absolute paths, e.g. a database's socket dir).
    step_user: str = ""
    bwrap: str = "bwrap"
    step_network: str = "host"
    step_hidden_paths: str = ""
    # Multi-user mode refuses to start when the bwrap sandbox does not work here; this lets it start
    # anyway, with the single-user isolation (steps can then read the server's files). Logged loudly.
    unsafe_allow_unisolated_steps: bool = False
    # What starts each step and records its exit: "kfp-step" (compiled on first use; needs a C
    # compiler), "python" (the same in Python plus sh), "shell" (unshare + sh + mount), or "auto": the
    # first of these that works here.
    step_wrapper: str = "auto"
    # A run's driver renews its claim this often; a claim older than `driver_stale_seconds` is
    # taken over by another executor (after a crash or a kill).
    driver_heartbeat_seconds: float = 2.0
    driver_stale_seconds: int = 10
    # A finished run's step scratch (each step's private /tmp and declared paths) is removed this long
    # after the run finished, as upstream deletes a workflow's pods a day after it ends; logs, outputs
    # and artifacts stay. 0 keeps it until the run is deleted.
    step_scratch_ttl_seconds: float = 86400.0
    # A step's stored log keeps at most this many bytes (its head and tail, and a line saying how much
    # was cut between them), applied when the step ends; 0: no cap.
    step_log_max_bytes: int = 64 << 20
    # kfp 2.x lightweight Python components run with a venv prepared once per kfp version and package
    # set (executor/step_environments.py), so their `pip install` lines are no-ops. `step_envs` off runs
    # them with whatever `python3` PATH finds. The dir (empty: <data dir>/step-envs), the interpreter the
    # venvs are made from (empty: the server's), pip options added to every install (e.g. a mirror's
    # `--index-url`) and how long one pip command may take.
    step_envs: bool = True
    step_envs_dir: str = ""
    step_envs_python: str = ""
    step_envs_pip_options: str = ""
    step_envs_timeout_seconds: float = 900.0
    # Where steps run: "local" (host processes of the executor's own machine) or "celery" (sent over
    # `celery_broker_url`, redis:// or amqp://, to `kfp-backend worker` processes on any machine that reaches
    # the database, the broker and the artifact store; see docs/execution.md, "Celery step execution").
    step_backend: str = "local"
    celery_broker_url: str = ""
    # The queue steps go to unless their template or workflow names one (annotation kfp-backend.io/queue),
    # and the queue a worker consumes unless given --queues.
    celery_queue: str = "kfp-backend"
    # A worker renews the heartbeat of each step it runs this often; a step whose heartbeat is older than
    # `worker_lost_seconds` is declared lost by its driver (failed, retried under its retryStrategy).
    worker_heartbeat_seconds: float = 2.0
    worker_lost_seconds: float = 30.0
    # How often a driver reads the dispatch rows of its steps in flight on workers.
    dispatch_poll_seconds: float = 0.2
    # How often a worker uploads the logs of its running steps to the artifact store.
    step_log_upload_seconds: float = 3.0
    # Scheduling. The scheduler runs inside `serve` unless turned off; `kfp-backend scheduler` runs
    # it alone. Only the holder of the scheduler lease fires jobs; others stand by.
    scheduler_enabled: bool = True
    # How often the scheduler looks for due jobs besides waking exactly at the next due time (which
    # covers jobs this process changed); bounds the delay for jobs changed by other processes.
    scheduler_poll_seconds: float = 0.2
    # The lease is renewed every `scheduler_heartbeat_seconds`; a standby takes over once the
    # active scheduler has not renewed it for `scheduler_lease_seconds`.
    scheduler_lease_seconds: float = 10.0
    scheduler_heartbeat_seconds: float = 2.0
    # Authentication of /apis/v1beta1 (healthz stays open): "required" (a bearer token, or the trusted
    # user header, on every request), "disabled", or "auto": required unless `host` is a loopback address.
    auth: str = "auto"
    # Accept the identity a fronting proxy puts in `user_header` (exactly one value) instead of a token.
    # Only safe when every request passes through that proxy and it strips the header from clients.
    trust_user_header: bool = False
    user_header: str = "kubeflow-userid"
    # Multi-user mode refuses pipeline URLs whose host resolves to a loopback, private, link-local or
    # otherwise non-public address, unless listed here: comma-separated host names (`*.example.org` for
    # any subdomain), addresses or CIDR networks.
    pipeline_url_allowed_hosts: str = ""
    # Names (`host` or `host:port`, comma-separated) by which clients reach this server besides
    # `localhost`, IP addresses and the bound host; "*" accepts any Host header. Guards against DNS
    # rebinding (see api/request_guard.py and docs/auth.md).
    allowed_hosts: str = ""

    def __post_init__(self) -> None:
        """Refuse values the server cannot work with, naming the variable, before anything starts."""
        def refuse(name: str, problem: str) -> None:
            raise ValueError(f"{ENV_PREFIX}{name.upper()}: {problem}")

        if self.auth not in AUTH_MODES:
            refuse("auth", f"{self.auth!r} is not one of {', '.join(AUTH_MODES)}")
        if self.step_isolation not in STEP_ISOLATION_MODES:
            refuse("step_isolation", f"{self.step_isolation!r} is not one of {', '.join(STEP_ISOLATION_MODES)}")
        if self.step_network not in STEP_NETWORKS:
            refuse("step_network", f"{self.step_network!r} is not one of {', '.join(STEP_NETWORKS)}")
        for path in self.hidden_paths:
            if not path.startswith("/"):
                refuse("step_hidden_paths", f"{path!r} is not an absolute path")
        if self.step_wrapper not in STEP_WRAPPERS:
            refuse("step_wrapper", f"{self.step_wrapper!r} is not one of {', '.join(STEP_WRAPPERS)}")
        if self.step_backend not in STEP_BACKENDS:
            refuse("step_backend", f"{self.step_backend!r} is not one of {', '.join(STEP_BACKENDS)}")
        broker_scheme = urlsplit(self.celery_broker_url).scheme
        if self.celery_broker_url and broker_scheme not in CELERY_BROKER_SCHEMES:
            refuse("celery_broker_url", f"{self.celery_broker_url!r} is not a redis:// or amqp:// URL")
        if self.step_backend == "celery" and not self.celery_broker_url:
            refuse("celery_broker_url", "KFP_BACKEND_STEP_BACKEND=celery needs a broker URL (redis:// or amqp://)")
        if not self.celery_queue.strip():
            refuse("celery_queue", "the queue name is empty")
        if self.log_level.upper() not in LOG_LEVELS:
            refuse("log_level", f"{self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        if not self.user_header.strip():
            refuse("user_header", "the header name is empty")
        for entry in self.allowed_host_list:
            if entry != "*" and split_host(entry) is None:
                refuse("allowed_hosts", f"{entry!r} is not a host name, an IP address, host:port or *")
        for name, minimum in _MINIMUMS.items():
            if getattr(self, name) < minimum:
                refuse(name, f"{getattr(self, name)} is below the minimum of {minimum:g}")
        if 0 < self.step_log_max_bytes < STEP_LOG_MIN_MAX_BYTES:
            refuse("step_log_max_bytes", f"must be 0 (no cap) or at least {STEP_LOG_MIN_MAX_BYTES}")
        if self.step_envs_dir and _under_tmp(Path(self.step_envs_dir)):
            # Every step gets a private /tmp, which hides the host's: its environment would not be there.
            refuse("step_envs_dir", f"{self.step_envs_dir!r} is under /tmp, which each step sees as its own "
                   "private /tmp: choose a directory elsewhere")
        try:
            shlex.split(self.step_envs_pip_options)
        except ValueError as exc:
            refuse("step_envs_pip_options", str(exc))
        if self.port > 65535:
            refuse("port", f"{self.port} is not a TCP port")
        try:
            parse_allowed_hosts(self.pipeline_url_allowed_hosts)
        except ValueError as exc:
            refuse("pipeline_url_allowed_hosts", str(exc))
        try:
            self.artifact_location  # noqa: B018 - parsed for its error
        except ValueError as exc:
            refuse("artifact_store", str(exc))
        endpoint = urlsplit(self.s3_endpoint_url)
        if self.s3_endpoint_url and (endpoint.scheme not in ("http", "https") or not endpoint.hostname):
            refuse("s3_endpoint_url", f"{self.s3_endpoint_url!r} is not an http:// or https:// URL")
        # A claim renewed no faster than it goes stale would be taken over while its holder is alive.
        if self.driver_heartbeat_seconds >= self.driver_stale_seconds:
            refuse("driver_heartbeat_seconds",
                   f"must be shorter than DRIVER_STALE_SECONDS ({self.driver_stale_seconds})")
        if self.worker_heartbeat_seconds >= self.worker_lost_seconds:
            refuse("worker_heartbeat_seconds",
                   f"must be shorter than WORKER_LOST_SECONDS ({self.worker_lost_seconds:g})")
        if self.scheduler_heartbeat_seconds >= self.scheduler_lease_seconds:
            refuse("scheduler_heartbeat_seconds",
                   f"must be shorter than SCHEDULER_LEASE_SECONDS ({self.scheduler_lease_seconds:g})")

    @property
    def auth_required(self) -> bool:
        """Whether requests must authenticate: `auto` turns it on for any address but a loopback one."""
        if self.auth == "auto":
            return not is_loopback_host(self.host)
        return self.auth == "required"

    @property
    def hidden_paths(self) -> list[str]:
        return [path.strip() for path in self.step_hidden_paths.split(",") if path.strip()]

    @property
    def pipeline_url_allow_list(self) -> AllowedHosts:
        return parse_allowed_hosts(self.pipeline_url_allowed_hosts)

    @property
    def effective_commit_sha(self) -> str:
        return self.commit_sha or checkout_commit() or UNKNOWN

    @property
    def effective_tag_name(self) -> str:
        return self.tag_name or __version__

    @property
    def allowed_host_list(self) -> tuple[str, ...]:
        """The entries of `allowed_hosts`, lower-cased."""
        return tuple(entry.strip().lower() for entry in self.allowed_hosts.split(",") if entry.strip())

    @property
    def effective_max_parallel_steps(self) -> int:
        if self.max_parallel_steps > 0:
            return self.max_parallel_steps
        return CELERY_MAX_PARALLEL_STEPS if self.step_backend == "celery" else 2 * (os.cpu_count() or 1)

    @property
    def effective_step_envs_dir(self) -> Path:
        """Where kfp 2.x step environments live: the setting, else the data dir's `step-envs`, unless the
        data dir is under /tmp (hidden from steps by their private /tmp): then the user's cache dir."""
        if self.step_envs_dir:
            return Path(self.step_envs_dir)
        if _under_tmp(self.data_dir):
            return Path.home() / ".cache" / "kfp-backend" / "step-envs"
        return self.data_dir / "step-envs"

    @property
    def artifact_location(self) -> ArtifactLocation:
        """`artifact_store` parsed (the data dir's `artifacts` when empty); ValueError for a bad value."""
        if not self.artifact_store:
            return ArtifactLocation("file", path=(self.data_dir / "artifacts").resolve())
        return parse_artifact_store(self.artifact_store)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'kfp-backend.db').resolve()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from the environment; keyword overrides (CLI flags) win when not None."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _convert(field, raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        return cls(**values)

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_environment(self) -> dict[str, str]:
        """Every setting as its KFP_BACKEND_* variable: what a child process needs to build the same settings
        with `from_env` (flags included, so a web worker decides `auto` auth from the same host)."""
        environ: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            environ[ENV_PREFIX + field.name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
        return environ


@dataclasses.dataclass(frozen=True)
class AllowedHosts:
    """KFP_BACKEND_PIPELINE_URL_ALLOWED_HOSTS parsed: host names (lower case, no trailing dot), name suffixes
    (`*.example.org` as `.example.org`) and networks (an address is a network of one)."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def names_host(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.names or any(name.endswith(suffix) for suffix in self.suffixes)

    def covers_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.networks)


@dataclasses.dataclass(frozen=True)
class ArtifactLocation:
    """Where the artifact store is: a directory (`file`) or a bucket and key prefix (`s3`)."""

    scheme: str
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""  # "" or ending with "/"


# S3's rule for bucket names: 3-63 of lower-case letters, digits, dots and hyphens, a letter or digit at each end.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_artifact_store(text: str) -> ArtifactLocation:
    """`file:///abs/path` or `s3://bucket[/prefix]`; ValueError saying what is wrong otherwise."""
    parts = urlsplit(text.strip())
    if parts.query or parts.fragment:
        raise ValueError(f"{text!r}: a query or fragment means nothing here")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{text!r} is not file:///absolute/path")
        return ArtifactLocation("file", path=Path(parts.path))
    if parts.scheme == "s3":
        if not _BUCKET.fullmatch(parts.netloc or ""):
            raise ValueError(f"{text!r}: {parts.netloc!r} is not an S3 bucket name")
        prefix = parts.path.strip("/")
        if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
            raise ValueError(f"{text!r}: the key prefix {prefix!r} has an empty, '.' or '..' segment")
        return ArtifactLocation("s3", bucket=parts.netloc, prefix=prefix + "/" if prefix else "")
    raise ValueError(f"{text!r} is neither file:///path nor s3://bucket/prefix")


def parse_allowed_hosts(text: str) -> AllowedHosts:
    """Comma- or space-separated entries: a host name, `*.` + a domain, an IP address or a CIDR network."""
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in text.replace(",", " ").split():
        bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
        try:
            networks.append(ipaddress.ip_network(bare, strict=False))
            continue
        except ValueError:
            if "/" in bare or ":" in bare:
                raise ValueError(f"{entry!r} is neither a host name nor an address or network") from None
        name = bare.lower().rstrip(".")
        wildcard = name.startswith("*.")
        labels = name[2:] if wildcard else name
        if not is_host_name(labels):
            raise ValueError(f"{entry!r} is not a host name (a leading '*.' allows every subdomain)")
        if wildcard:
            suffixes.append("." + labels)
        else:
            names.add(labels)
    return AllowedHosts(frozenset(names), tuple(suffixes), tuple(networks))


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`; anything else (0.0.0.0, ::, a name, a public address) is not."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_host_name(name: str) -> bool:
    """A lower-case host name without its trailing dot: labels of letters, digits, `-` and `_`."""
    return bool(name) and all(_HOST_LABEL.fullmatch(label) for label in name.split("."))


def split_host(value: str) -> tuple[str, int | None] | None:
    """`host`, `host:port`, `[v6]` or `[v6]:port` (a Host header's forms) as (lower-case name without
    brackets, port or None); None when it is none of these."""
    value = value.strip().lower()
    if not value or any(char in value for char in "/?#@\\ \t"):
        return None
    try:
        parts = urlsplit("//" + value)
        name, port = parts.hostname or "", parts.port
    except ValueError:
        return None
    if value.startswith("["):
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        name = name[:-1] if name.endswith(".") else name  # the fully qualified form names the same host
        if not is_host_name(name):
            return None
    return name, port


def _convert(field: dataclasses.Field, raw: str) -> object:
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    try:
        if kind == "bool":
            return _parse_bool(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{field.name.upper()}: {exc}") from exc
    return raw


def _under_tmp(path: Path) -> bool:
    return path.resolve().is_relative_to("/tmp")
