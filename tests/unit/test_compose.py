"""Static checks of the deployment files: compose.yaml, Prometheus, Grafana, Dockerfile, Procfile.

There is no Docker engine on the CI machine, so these catch the mistakes that
`docker compose up` would otherwise only show at start-up: compose.yaml against the
Compose specification's own JSON schema (as check-jsonschema ships it, pinned in the
dev dependencies), then the rules of issue 11 (README "Running with compose").
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import msgspec
import pytest
import yaml

from contracts.runtime.settings import ENV_NAMES, Settings
from gateway.frontdoor.devkey import COMPOSE_SECRETS, POSTGRES_ROLES, REDIS_USERS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("gateway", "ingest", "mover", "aggregator")
STACK_SERVICES = (*APP_SERVICES, "migrate", "redis", "postgres", "prometheus", "grafana")
DASHBOARD_METRICS = (
    "litestar_requests_total",
    "litestar_request_duration_seconds_bucket",
    "conveyor_messages_total",
    "conveyor_message_duration_seconds_bucket",
    "conveyor_stream_pending",
    "conveyor_stream_lag",
    "conveyor_stream_length",
    "conveyor_stream_oldest_pending_seconds",
    "conveyor_stream_dead_letters",
    "conveyor_dead_letters_total",
    "conveyor_reclaimed_total",
    "conveyor_jobs_total",
    "conveyor_jobs_by_status",
    "conveyor_rows_total",
    "conveyor_sse_clients",
)
# What an operator must set: the variables compose.yaml requires (`${VAR:?message}`).
REQUIRED_VARIABLES = {"CONVEYOR_IMAGE_TAG": "local"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"(?i)(^|_)(password|passwd|secret|token|keys?|credentials?)($|_)")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """`value` with each `${...}` replaced as compose does (`$$` is a literal `$`)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        given = env.get(name)
        if op in (":?", "?") and not given:
            raise KeyError(f"{name}: {arg}")
        return given if given else (arg or "")

    parts = value.split("$$")
    return "$".join(VARIABLE.sub(one, part) for part in parts)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return dict(_yaml(ROOT / "compose.yaml"))


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """compose.yaml as compose sees it with the required variables set."""
    return dict(_interpolate(raw, REQUIRED_VARIABLES))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec or {} for name, spec in compose["services"].items()}


def _validator() -> jsonschema.protocols.Validator:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def _depends_on(spec: dict[str, Any]) -> dict[str, str]:
    deps = spec.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


def _ports(spec: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(published host port or None, container port) for each entry of `ports`."""
    out: list[tuple[int | None, int]] = []
    for entry in spec.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].rsplit(":", 2)
        host = parts[-2] if len(parts) >= 2 else None
        out.append((int(host) if host else None, int(parts[-1])))
    return out


def _listens_on(name: str, spec: dict[str, Any]) -> int:
    """The port an app service serves on: `<NAME>_PORT`, else its `__main__`'s default."""
    if port := _environment(spec).get(f"{name.upper()}_PORT"):
        return int(port)
    main = (ROOT / name / "__main__.py").read_text()
    found = re.search(r"default_port=(\d+)", main) or re.search(
        rf"{name.upper()}_PORT\D*(\d+)", main
    )
    assert found, f"{name}/__main__.py: no default port"
    return int(found.group(1))


def _bind_mounts(spec: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of each bind mount from the repository."""
    mounts = {}
    for volume in spec.get("volumes", []):
        if isinstance(volume, str) and volume.startswith("."):
            source, target = volume.split(":")[:2]
            mounts[target] = ROOT / source
    return mounts


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


# --- the Compose specification ----------------------------------------------------------


def test_compose_yaml_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = sorted(_validator().iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("services", "gateway", "depends_on", "redis", "condition"), "service_ready"),
        (("services", "mover", "deploy", "replica"), 2),
        (("services", "redis", "healthcheck", "tset"), ["CMD", "true"]),
        (("secrets", "api_keys", "path"), "./deploy/secrets/api_keys"),
    ],
)
def test_the_schema_rejects_a_broken_file(
    compose: dict[str, Any], path: tuple[str, ...], bad: Any
) -> None:
    """The schema check can fail: each of these small mistakes is caught."""
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    assert list(_validator().iter_errors(broken))


# --- variables ----------------------------------------------------------------------------


def test_every_variable_has_a_default_or_fails_fast_with_a_message() -> None:
    text = (ROOT / "compose.yaml").read_text()
    lines = [line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#")]
    body = "\n".join(lines).replace("$$", "")
    assert not re.search(r"\$[A-Za-z_]", body), "a bare $VAR: give it a default or :?message"
    found = VARIABLE.findall(body)
    assert found
    for name, op, arg in found:
        assert op in (":-", ":?"), f"${{{name}}} has neither :-default nor :?message"
        if op == ":?":
            assert name in REQUIRED_VARIABLES, f"{name} is required: list it (and in the README)"
            assert name in arg, f"{name}: the message names the variable"
            assert len(arg.split()) >= 4, f"{name}: say what to set it to"
    assert {name for name, op, _ in found if op == ":?"} == set(REQUIRED_VARIABLES)


def test_a_missing_required_variable_stops_with_its_message(raw: dict[str, Any]) -> None:
    for name in REQUIRED_VARIABLES:
        with pytest.raises(KeyError, match=f"set {name}"):
            _interpolate(raw, {k: v for k, v in REQUIRED_VARIABLES.items() if k != name})


# --- services, health and order -------------------------------------------------------------


def test_the_whole_stack_is_defined(services: dict[str, dict[str, Any]]) -> None:
    assert set(STACK_SERVICES) <= set(services)


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        check = spec.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name}'s healthcheck is disabled"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    for name in APP_SERVICES:
        port = _listens_on(name, services[name])
        url = f"http://127.0.0.1:{port}/readyz"
        assert url in " ".join(services[name]["healthcheck"]["test"]), f"{name}: not {url}"
        assert "python" in services[name]["healthcheck"]["test"], name  # what the image has
    assert "/-/ready" in " ".join(services["prometheus"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(services["grafana"]["healthcheck"]["test"])
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_every_depends_on_has_a_condition_that_can_hold(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in services.items():
        deps = spec.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on as a list starts without waiting"
        for dep, cond in deps.items():
            assert dep in services, f"{name} depends on undefined service {dep}"
            condition = (cond or {}).get("condition")
            assert condition in CONDITIONS, f"{name} -> {dep}: condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}, no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is not one-shot"


def test_migrate_is_one_shot_and_every_app_service_waits_for_it(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert "conveyor migrate" in " ".join(migrate["command"])
    assert not migrate.get("ports")
    assert "deploy" not in migrate
    assert _depends_on(migrate) == {"postgres": "service_healthy"}
    for name in APP_SERVICES:
        deps = _depends_on(services[name])
        assert deps.get("migrate") == "service_completed_successfully", name
        assert deps.get("redis") == "service_healthy", name
        assert deps.get("postgres") == "service_healthy", name


def test_two_movers_and_prometheus_scrapes_both(services: dict[str, dict[str, Any]]) -> None:
    mover = services["mover"]
    assert mover["deploy"]["replicas"] == 2
    assert "container_name" not in mover, "two replicas cannot share a name"
    assert not mover.get("ports"), "two replicas cannot share a published port"
    config = _yaml(ROOT / "deploy/prometheus/prometheus.yml")
    port = _listens_on("mover", mover)
    found = [
        sd
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        if "mover" in sd.get("names", [])
    ]
    assert found, "prometheus must find the movers by DNS (a static mover:8002 is one replica)"
    assert all(sd.get("type", "SRV") == "A" and sd["port"] == port for sd in found)


def test_prometheus_scrapes_every_app_service(services: dict[str, dict[str, Any]]) -> None:
    config = _yaml(ROOT / "deploy/prometheus/prometheus.yml")
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    } | {
        f"{name}:{sd['port']}"
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd.get("names", [])
    }
    for name in APP_SERVICES:
        assert f"{name}:{_listens_on(name, services[name])}" in targets, f"{name} is not scraped"
    for target in targets:
        host = target.split(":")[0]
        assert host in services or host in ("localhost", "127.0.0.1"), target


def test_published_ports_are_unique(services: dict[str, dict[str, Any]]) -> None:
    published = [host for spec in services.values() for host, _ in _ports(spec) if host]
    assert published, "compose publishes no port at all"
    assert len(published) == len(set(published)), sorted(published)
    assert {name for name, spec in services.items() if _ports(spec)} == {
        "gateway",
        "prometheus",
        "grafana",
    }


# --- secrets and identities ---------------------------------------------------------------


def test_no_secret_is_written_inline(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        for var, value in _environment(spec).items():
            if SECRET_NAME.search(var) and not var.endswith("_FILE"):
                pytest.fail(f"{name}: {var} holds a secret inline; use {var}_FILE and a secret")
            if var.endswith("_FILE") and SECRET_NAME.search(var):
                assert value.startswith("/run/secrets/"), f"{name}: {var}={value}"
            if "://" in value:
                assert urlsplit(value).password is None, f"{name}: {var} has a password"
        for text in _strings(
            [spec.get("command"), spec.get("entrypoint"), spec.get("healthcheck")]
        ):
            assert not re.search(r"(^|\s)(-a|--pass|--password)\s+[^\s$\"]", text), (
                f"{name}: {text}"
            )


def test_secrets_are_files_devkey_makes_and_every_one_is_used(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = compose["secrets"]
    assert set(declared) == set(COMPOSE_SECRETS)
    for secret, spec in declared.items():
        assert set(spec) == {"file"}, f"secret {secret}: a file, nothing else"
        assert spec["file"] == f"./deploy/secrets/{secret}", spec
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    used = {s for spec in services.values() for s in spec.get("secrets", [])}
    assert used == set(declared), f"declared but mounted nowhere: {set(declared) - used}"


def _settings_names() -> set[str]:
    return {
        ENV_NAMES.get(f.name, f"CONVEYOR_{f.name.upper()}")
        for f in msgspec.structs.fields(Settings)
    }


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_each_app_service_is_its_own_redis_user_and_postgres_role(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    spec = services[name]
    env = _environment(spec)
    program = "gateway" if name == "gateway" else name
    allowed = _settings_names() | {
        f"{program.upper()}_HOST",
        f"{program.upper()}_PORT",
        "LOG_LEVEL",
    }
    assert set(env) <= allowed, f"{name} sets what no setting reads: {set(env) - allowed}"
    settings = Settings.from_env(env)  # every value has the setting's type
    mounted = set(spec.get("secrets", []))
    files = {v.removeprefix("/run/secrets/") for k, v in env.items() if k.endswith("_FILE")}
    assert files == mounted, f"{name}: secrets mounted {mounted}, read {files}"

    role = urlsplit(settings.database_url)
    assert role.username == f"conveyor_{name}", name
    assert role.hostname == "postgres", name
    assert settings.database_password_file == f"/run/secrets/postgres_{name}_password"
    assert settings.db_schema == _environment(services["postgres"])["CONVEYOR_DB_SCHEMA"]
    assert role.path.lstrip("/") == _environment(services["postgres"])["POSTGRES_DB"]
    if name == "migrate":
        assert "REDIS_URL" not in env, "migrate needs no Redis"
        return
    user = urlsplit(settings.redis_url)
    assert user.username == name, name
    assert user.hostname == "redis", name
    assert settings.redis_password_file == f"/run/secrets/redis_{name}_password"
    if name == "gateway":
        assert settings.api_keys_file == "/run/secrets/api_keys"
        assert "api_keys" in mounted


def test_redis_keeps_what_it_acknowledged_and_knows_only_its_users(
    services: dict[str, dict[str, Any]],
) -> None:
    redis = services["redis"]
    mounts = _bind_mounts(redis)
    assert "/data" in [v.split(":")[1] for v in redis["volumes"] if not v.startswith(".")]
    # The effective configuration: the file start.sh hands to redis-server, then the args.
    start = " ".join(redis.get("entrypoint", []) + redis.get("command", []))
    script = re.search(r"(/etc/redis/\S+\.sh)", start)
    assert script, start
    conf_dir = mounts["/etc/redis"]
    assert (conf_dir / Path(script.group(1)).name).exists()
    assert "redis.conf" in (conf_dir / Path(script.group(1)).name).read_text()
    config: dict[str, str] = {}
    for line in (conf_dir / "redis.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            config[key.lower()] = value.strip()
    args = redis.get("command", [])
    config |= {k.lstrip("-"): v for k, v in zip(args[::2], args[1::2], strict=False)}
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["aclfile"]
    acl = (conf_dir / "users.acl").read_text()
    assert re.search(r"^user default off\b", acl, re.M), "the default user must be off"
    users = set(re.findall(r"^user (\w+) on ", acl, re.M))
    assert users == set(REDIS_USERS)
    assert {f"redis_{u}_password" for u in users} == set(redis["secrets"])


def test_postgres_makes_the_roles_from_secret_files(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    env = _environment(postgres)
    assert "POSTGRES_PASSWORD" not in env
    assert env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    init = _bind_mounts(postgres)["/docker-entrypoint-initdb.d"]
    scripts = sorted(init.glob("*.sh"))
    assert scripts, "no init script for the roles"
    text = "\n".join(s.read_text() for s in scripts)
    listed = re.search(r"^services=\(([^)]*)\)", text, re.M)
    assert listed
    assert set(listed.group(1).split()) == set(POSTGRES_ROLES)
    expected = {"postgres_password"} | {f"postgres_{r}_password" for r in POSTGRES_ROLES}
    assert set(postgres["secrets"]) == expected
    assert "postgres_${service}_password" in text


# --- files the stack mounts ---------------------------------------------------------------


def test_bind_mounted_files_and_the_paths_into_them_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    seen = 0
    for name, spec in services.items():
        mounts = _bind_mounts(spec)
        for source in mounts.values():
            assert source.exists(), f"{name}: {source}"
        texts = _strings([spec.get("entrypoint"), spec.get("command"), spec.get("environment")])
        for text in texts:
            for target, source in mounts.items():
                for path in re.findall(rf"{re.escape(target)}/[\w./-]+", text):
                    seen += 1
                    assert (source / path.removeprefix(target + "/")).exists(), f"{name}: {path}"
    assert seen >= 2  # the redis entrypoint, grafana's home dashboard


def test_prometheus_loads_the_alert_rules_it_mounts(services: dict[str, dict[str, Any]]) -> None:
    mounts = _bind_mounts(services["prometheus"])
    config_dir = mounts["/etc/prometheus"]
    config = _yaml(config_dir / "prometheus.yml")
    rule_files = config.get("rule_files", [])
    assert rule_files, "prometheus.yml loads no alert rules"
    for pattern in rule_files:
        relative = str(pattern).removeprefix("/etc/prometheus/")
        assert list(config_dir.glob(relative)), f"rule_files {pattern} matches nothing mounted"
    scrape = config["scrape_configs"]
    gateway_job = next(j for j in scrape if "gateway:8000" in str(j.get("static_configs")))
    assert gateway_job["authorization"]["credentials_file"] == "/run/secrets/prometheus_key"
    assert "prometheus_key" in services["prometheus"]["secrets"]


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels, with the ones nested in collapsed rows."""
    out = []
    for panel in panels:
        out += _panels(panel.get("panels", [])) if panel.get("type") == "row" else [panel]
    return out


def test_dashboards_parse_and_every_panel_has_a_query() -> None:
    datasources = _yaml(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml")
    uids = {source["uid"] for source in datasources["datasources"]}
    files = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
    assert files
    exprs = []
    for path in files:
        panels = _panels(json.loads(path.read_text())["panels"])
        assert panels, path.name
        for panel in panels:
            assert panel["datasource"]["uid"] in uids, f"{path.name}: {panel['title']}"
            panel_exprs = [target.get("expr", "").strip() for target in panel.get("targets", [])]
            assert panel_exprs, f"{path.name}: {panel['title']} has no target"
            assert all(panel_exprs), f"{path.name}: {panel['title']} has an empty expr"
            exprs += panel_exprs
    used = {name for expr in exprs for name in re.findall(r"[a-z_]+", expr)}
    assert set(DASHBOARD_METRICS) - used == set()


def test_grafana_loads_the_dashboards_compose_mounts(services: dict[str, dict[str, Any]]) -> None:
    provider = _yaml(ROOT / "deploy/grafana/provisioning/dashboards/conveyor.yml")
    path = provider["providers"][0]["options"]["path"]
    assert path in _bind_mounts(services["grafana"])
    env = _environment(services["grafana"])
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"


def test_dockerfile_builds_one_image_for_the_services(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = ROOT / "deploy/Dockerfile"
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "the image runs as root"
    assert users[-1] not in {"root", "0"}
    for name in (*APP_SERVICES, "migrate"):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == dockerfile
        assert services[name]["image"] == f"conveyor:{REQUIRED_VARIABLES['CONVEYOR_IMAGE_TAG']}"


def test_the_image_holds_no_secret() -> None:
    """`COPY . .` in the Dockerfile copies the build context: the secrets stay out of it."""
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"deploy/secrets", ".env"} <= ignored


def test_procfile_runs_the_four_services() -> None:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = dict(line.split(":", 1) for line in lines if line.strip() and line[0] != "#")
    assert set(entries) == set(APP_SERVICES)
    for name, command in entries.items():
        assert re.search(rf"-m {name}\b", command), command
