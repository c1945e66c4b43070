"""Settings: KFP_BACKEND_* environment variables, CLI overrides, bad values, and the docs table."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

import pytest

from kfp_backend import cli
from kfp_backend.config import AllowedHosts, ArtifactLocation, Settings, parse_allowed_hosts, parse_artifact_store

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8888
    assert settings.data_dir == Path(".kfp-backend")
    assert settings.database_url == ""
    assert settings.auto_migrate is True
    assert settings.threads == 16
    assert settings.max_upload_bytes == 32 << 20
    assert settings.url_fetch_timeout_seconds == 30.0
    assert settings.commit_sha == settings.tag_name == ""  # the checkout's commit, the package version
    assert settings.default_service_account == "pipeline-runner"
    assert settings.auto_update_default_version is True


def test_every_variable_is_read_and_converted() -> None:
    settings = Settings.from_env({
        "KFP_BACKEND_HOST": "0.0.0.0",
        "KFP_BACKEND_PORT": " 9000 ",
        "KFP_BACKEND_DATA_DIR": "/var/lib/kfp",
        "KFP_BACKEND_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "KFP_BACKEND_AUTO_MIGRATE": "false",
        "KFP_BACKEND_THREADS": "4",
        "KFP_BACKEND_LOG_LEVEL": "DEBUG",
        "KFP_BACKEND_MAX_UPLOAD_BYTES": "1024",
        "KFP_BACKEND_URL_FETCH_TIMEOUT_SECONDS": "2.5",
        "KFP_BACKEND_COMMIT_SHA": "abc123",
        "KFP_BACKEND_TAG_NAME": "1.8.5",
        "KFP_BACKEND_DEFAULT_SERVICE_ACCOUNT": "runner",
        "KFP_BACKEND_AUTO_UPDATE_DEFAULT_VERSION": "0",
    })
    assert settings == Settings(
        host="0.0.0.0", port=9000, data_dir=Path("/var/lib/kfp"), database_url="postgresql+psycopg://u@h/db",
        auto_migrate=False, threads=4, log_level="DEBUG", max_upload_bytes=1024, url_fetch_timeout_seconds=2.5,
        commit_sha="abc123", tag_name="1.8.5", default_service_account="runner", auto_update_default_version=False,
    )
    assert type(settings.port) is int and isinstance(settings.data_dir, Path)
    assert type(settings.url_fetch_timeout_seconds) is float


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), (" on ", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("off", False), ("", False)],
)
def test_booleans(raw: str, value: bool) -> None:
    assert Settings.from_env({"KFP_BACKEND_AUTO_MIGRATE": raw}).auto_migrate is value


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("KFP_BACKEND_PORT", "eighty"),
        ("KFP_BACKEND_PORT", ""),
        ("KFP_BACKEND_PORT", "80.5"),
        ("KFP_BACKEND_THREADS", "many"),
        ("KFP_BACKEND_MAX_UPLOAD_BYTES", "32MiB"),
        ("KFP_BACKEND_URL_FETCH_TIMEOUT_SECONDS", "soon"),
        ("KFP_BACKEND_AUTO_MIGRATE", "maybe"),
        ("KFP_BACKEND_AUTO_UPDATE_DEFAULT_VERSION", "2"),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}: "):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("KFP_BACKEND_PORT", "-1"),
        ("KFP_BACKEND_PORT", "65536"),
        ("KFP_BACKEND_THREADS", "0"),
        ("KFP_BACKEND_MAX_UPLOAD_BYTES", "0"),
        ("KFP_BACKEND_URL_FETCH_TIMEOUT_SECONDS", "0"),
        ("KFP_BACKEND_MAX_PARALLEL_STEPS", "-2"),
        ("KFP_BACKEND_DRIVER_STALE_SECONDS", "0"),
        ("KFP_BACKEND_DRIVER_HEARTBEAT_SECONDS", "30"),
        ("KFP_BACKEND_SCHEDULER_POLL_SECONDS", "-0.5"),
        ("KFP_BACKEND_SCHEDULER_HEARTBEAT_SECONDS", "10"),
        ("KFP_BACKEND_STEP_SCRATCH_TTL_SECONDS", "-1"),
        ("KFP_BACKEND_STEP_LOG_MAX_BYTES", "-1"),
        ("KFP_BACKEND_STEP_LOG_MAX_BYTES", "4095"),
        ("KFP_BACKEND_STEP_ISOLATION", "docker"),
        ("KFP_BACKEND_STEP_WRAPPER", "bash"),
        ("KFP_BACKEND_STEP_NETWORK", "private"),
        ("KFP_BACKEND_STEP_HIDDEN_PATHS", "/run/postgresql,relative/dir"),
        ("KFP_BACKEND_UNSAFE_ALLOW_UNISOLATED_STEPS", "maybe"),
        ("KFP_BACKEND_LOG_LEVEL", "LOUD"),
        ("KFP_BACKEND_AUTH", "sometimes"),
        ("KFP_BACKEND_PIPELINE_URL_ALLOWED_HOSTS", "10.0.0.0/33"),
        ("KFP_BACKEND_PIPELINE_URL_ALLOWED_HOSTS", "good.example, bad_host!"),
        ("KFP_BACKEND_PIPELINE_URL_ALLOWED_HOSTS", "*."),
        ("KFP_BACKEND_ARTIFACT_STORE", "/var/lib/artifacts"),
        ("KFP_BACKEND_ARTIFACT_STORE", "file://relative/path"),
        ("KFP_BACKEND_ARTIFACT_STORE", "gs://bucket/prefix"),
        ("KFP_BACKEND_ARTIFACT_STORE", "s3://"),
        ("KFP_BACKEND_ARTIFACT_STORE", "s3://Bad_Bucket/x"),
        ("KFP_BACKEND_ARTIFACT_STORE", "s3://bucket/a//b"),
        ("KFP_BACKEND_ARTIFACT_STORE", "s3://bucket/../b"),
        ("KFP_BACKEND_ARTIFACT_STORE", "s3://bucket/p?versionId=1"),
        ("KFP_BACKEND_S3_ENDPOINT_URL", "minio:9000"),
        ("KFP_BACKEND_S3_ENDPOINT_URL", "ftp://minio:9000"),
    ],
)
def test_out_of_range_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}: "):
        Settings.from_env({name: raw})


def test_the_artifact_store_location(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).artifact_location == ArtifactLocation("file", path=tmp_path / "artifacts")
    local = Settings(artifact_store="file:///srv/kfp").artifact_location
    assert local == ArtifactLocation("file", path=Path("/srv/kfp"))
    settings = Settings.from_env({"KFP_BACKEND_ARTIFACT_STORE": "s3://kfp-artifacts/team/a/",
                                  "KFP_BACKEND_S3_ENDPOINT_URL": "http://minio:9000"})
    assert settings.artifact_location == ArtifactLocation("s3", bucket="kfp-artifacts", prefix="team/a/")
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert parse_artifact_store("s3://kfp-artifacts").prefix == ""


def test_the_pipeline_url_allow_list() -> None:
    assert Settings().pipeline_url_allow_list == AllowedHosts()
    allowed = Settings.from_env({"KFP_BACKEND_PIPELINE_URL_ALLOWED_HOSTS":
                                 "Artifacts.Internal., 10.0.0.0/8 *.corp.example [fd00::1] 192.168.1.7"}
                                ).pipeline_url_allow_list
    assert allowed == AllowedHosts(
        names=frozenset({"artifacts.internal"}), suffixes=(".corp.example",),
        networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::1/128"),
                  ipaddress.ip_network("192.168.1.7/32")))
    for host in ("artifacts.internal", "ARTIFACTS.internal.", "a.corp.example", "b.a.corp.example"):
        assert allowed.names_host(host), host
    for host in ("corp.example", "xcorp.example", "artifacts.internal.evil", "10.0.0.1"):
        assert not allowed.names_host(host), host
    assert allowed.covers_address(ipaddress.ip_address("10.200.0.1"))
    assert allowed.covers_address(ipaddress.ip_address("fd00::1"))
    assert not allowed.covers_address(ipaddress.ip_address("192.168.1.8"))
    assert parse_allowed_hosts("") == parse_allowed_hosts(" , ") == AllowedHosts()


def test_edge_values_are_accepted() -> None:
    settings = Settings.from_env({"KFP_BACKEND_PORT": "0", "KFP_BACKEND_MAX_PARALLEL_STEPS": "0",
                                  "KFP_BACKEND_LOG_LEVEL": "debug", "KFP_BACKEND_PORT_": "x"})
    assert (settings.port, settings.max_parallel_steps, settings.log_level) == (0, 0, "debug")
    assert Settings(port=65535, threads=1, driver_heartbeat_seconds=0.5, driver_stale_seconds=1).port == 65535
    assert Settings.from_env({"KFP_BACKEND_STEP_LOG_MAX_BYTES": "0"}).step_log_max_bytes == 0  # no cap
    assert Settings.from_env({"KFP_BACKEND_STEP_LOG_MAX_BYTES": "4096"}).step_log_max_bytes == 4096


def test_the_step_sandbox_settings() -> None:
    settings = Settings.from_env({"KFP_BACKEND_STEP_ISOLATION": "bwrap", "KFP_BACKEND_STEP_USER": "kfp-runner",
                                  "KFP_BACKEND_STEP_HIDDEN_PATHS": " /run/postgresql, ,/etc/kfp ",
                                  "KFP_BACKEND_STEP_NETWORK": "none", "KFP_BACKEND_BWRAP": "/opt/bwrap",
                                  "KFP_BACKEND_UNSAFE_ALLOW_UNISOLATED_STEPS": "true"})
    assert (settings.step_isolation, settings.step_user, settings.step_network, settings.bwrap) == (
        "bwrap", "kfp-runner", "none", "/opt/bwrap")
    assert settings.hidden_paths == ["/run/postgresql", "/etc/kfp"]
    assert settings.unsafe_allow_unisolated_steps is True
    assert Settings().hidden_paths == [] and Settings().unsafe_allow_unisolated_steps is False


def test_overrides_win_and_none_does_not_override() -> None:
    environ = {"KFP_BACKEND_PORT": "9000", "KFP_BACKEND_HOST": "0.0.0.0", "KFP_BACKEND_AUTO_MIGRATE": "true"}
    settings = Settings.from_env(environ, port=7000, host=None, auto_migrate=False, data_dir=Path("/d"))
    assert settings.port == 7000
    assert settings.host == "0.0.0.0"
    assert settings.auto_migrate is False
    assert settings.data_dir == Path("/d")


def test_unrelated_variables_are_ignored() -> None:
    environ = {"PORT": "1", "KFP_BACKEND_BOGUS": "x", "KFP_BACKEND_port": "2", "kfp_backend_port": "3"}
    settings = Settings.from_env(environ)
    assert settings == Settings()


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFP_BACKEND_PORT", "8123")
    monkeypatch.setenv("KFP_BACKEND_LOG_LEVEL", "WARNING")
    settings = Settings.from_env()
    assert (settings.port, settings.log_level) == (8123, "WARNING")


def test_effective_database_url(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).effective_database_url == f"sqlite:///{tmp_path.resolve()}/kfp-backend.db"
    relative = Settings(data_dir=Path("rel")).effective_database_url
    assert relative.startswith("sqlite:////") and relative.endswith("/rel/kfp-backend.db")
    assert Settings(database_url="mysql+pymysql://r@h/t").effective_database_url == "mysql+pymysql://r@h/t"


def test_settings_are_immutable_and_replace_copies() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    changed = settings.replace(port=1)
    assert (changed.port, settings.port) == (1, 8888)


def test_cli_refuses_a_bad_value_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KFP_BACKEND_AUTO_MIGRATE", "perhaps")
    assert cli.main(["db", "upgrade"]) == 2
    assert "KFP_BACKEND_AUTO_MIGRATE" in capsys.readouterr().err


def test_docs_list_every_setting_with_its_default() -> None:
    rows = {}
    for line in DOCS.read_text().splitlines():
        match = re.match(r"\|\s*`KFP_BACKEND_([A-Z0-9_]+)`\s*\|[^|]*\|\s*([^|]*?)\s*\|", line)
        if match:
            rows[match.group(1).lower()] = match.group(2)
    test_only = {"test_postgres_url", "test_mysql_url", "e2e_database_url"}
    fields = {field.name: field.default for field in dataclasses.fields(Settings)}
    assert set(rows) - test_only == set(fields)
    for name, default in fields.items():
        if isinstance(default, bool):
            assert rows[name] == f"`{str(default).lower()}`", name
        elif isinstance(default, int | float | str) and default != "":
            documented = rows[name].strip("`")
            assert documented == str(default) or float(documented) == default, name


def test_the_environment_of_child_processes_rebuilds_the_same_settings() -> None:
    """`serve --workers` passes its settings (flags included) to its children as KFP_BACKEND_* variables."""
    settings = Settings(host="0.0.0.0", port=9000, data_dir=Path("/srv/kfp"), database_url="sqlite:////srv/kfp.db",
                        workers=3, auto_migrate=False, driver_heartbeat_seconds=1.5,
                        step_envs_pip_options="-q --x 'a b'")
    rebuilt = Settings.from_env(settings.as_environment())
    assert rebuilt == settings
    assert rebuilt.auth_required  # `auto` decides the same from the same host
    assert Settings.from_env(Settings().as_environment()) == Settings()
