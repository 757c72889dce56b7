"""The deployment in platform/ checked against the code: compose env, commands, ports, image, docs."""

import ast
import io
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
import yaml
from PIL import Image

from tests.conftest import FIXTURES, ROOT, S3_CREDENTIALS, free_port, stop_process, wait_for_port

PLATFORM = ROOT / "platform"
COMPOSE = PLATFORM / "compose.yaml"
DOCKERFILE = PLATFORM / "Dockerfile"
DOCKERIGNORE = PLATFORM / "Dockerfile.dockerignore"
PROCFILE = PLATFORM / "Procfile"
ENV_EXAMPLE = PLATFORM / "env.example"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
SETTINGS = ROOT / "config" / "settings.py"
CELERY_APP = ROOT / "config" / "celery_app.py"

# Production cannot run without these: shared database, queue and object storage, and the key.
PRODUCTION_REQUIRED = ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME")
# Settings the stack leaves out on purpose; every other one is passed through x-app-env.
NOT_PASSED = {
    "DJANGO_DEBUG": "production never runs in debug mode",
    "CUTOUT_VAR_DIR": "set by the image",
    "BG_REMOVE_MODEL_HOME": "set by the image, where its build provisioned the models",
    "BG_REMOVE_MODELS": "set by the image, from the models it was built with",
    "CUTOUT_MEDIA_ROOT": "the stack stores in S3",
    "ORIGIN_LOCAL_ROOT": "local folders are per machine",
    "ORIGIN_ALLOW_LOOPBACK": "development only",
    "DJANGO_STATIC_ROOT": "the image collects static files into the default folder at build time",
    "CUTOUT_ENV_FILE": "the image has no .env (Dockerfile.dockerignore): the stack passes every setting",
    "RENDER_NODE_CACHE_DIR": "each container's own folder, under CUTOUT_VAR_DIR (set by the image)",
}
APP_SERVICES = ("web", "worker", "webhooks", "beat", "migrate", "createbucket")
SERVICES = {"postgres": "postgres:", "redis": "redis:", "s3": "chrislusf/seaweedfs:"}


# --- What config/settings.py reads ----------------------------------------------------------------

READERS = {"env", "env_bool", "env_int", "env_list", "os.environ.get", "os.getenv",
           "env.str", "env.bool", "env.int", "env.float", "env.list", "env.db_url"}
LITERAL_NODES = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.List, ast.Tuple, ast.Load)


@dataclass(frozen=True)
class Read:
    reader: str
    default: ast.expr | None

    @property
    def default_text(self) -> str | None:
        """The default as an operator would write it; None when there is none or it is computed."""
        if self.default is None:
            return "" if self.reader == "env_list" else None
        if isinstance(self.default, ast.Constant) and self.default.value is None:
            return None  # django-environ's `default=None`: optional, with no default.
        if not all(isinstance(node, LITERAL_NODES) for node in ast.walk(self.default)):
            return None
        value = eval(compile(ast.Expression(self.default), str(SETTINGS), "eval"), {"__builtins__": {}})
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (list, tuple)):
            return ",".join(value)
        return str(value)


def settings_reads() -> dict[str, Read]:
    """Every environment variable config/settings.py reads, parsed from its source."""
    reads = {}
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in READERS and node.args:
            name = node.args[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                default = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "default"), None)
                reads[name.value] = Read(ast.unparse(node.func), default)
        elif (isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ"
              and isinstance(node.slice, ast.Constant)):
            reads[node.slice.value] = Read("os.environ", None)
    return reads


# --- Compose: interpolation as Docker Compose does it ---------------------------------------------

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class MissingVariableError(Exception):
    pass


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing the `${` at `start`, nested expressions included."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unclosed ${{ in {text!r}")


def _split(expression: str) -> tuple[str, str, str]:
    name = NAME.match(expression).group()
    rest = expression[len(name):]
    for op in OPERATORS:
        if rest.startswith(op):
            return name, op, rest[len(op):]
    assert not rest, f"unsupported interpolation ${{{expression}}}"
    return name, "", ""


def interpolate(text: str, variables: dict) -> str:
    """`$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR:+alt}`, nested."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 1)
            name, op, arg = _split(text[i + 2:end])
            value = variables.get(name)
            unset = value is None or (op.startswith(":") and value == "")
            if op.endswith("-"):
                value = interpolate(arg, variables) if unset else value
            elif op.endswith("?"):
                if unset:
                    raise MissingVariableError(f"{name}: {interpolate(arg, variables)}")
            elif op.endswith("+"):
                value = "" if unset else interpolate(arg, variables)
            out.append(value or "")
            i = end + 1
        elif match := NAME.match(text, i + 1):
            out.append(variables.get(match.group(), ""))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def expressions(text: str):
    """(name, operator, argument) of every `${…}` in `text`, nested ones too; `$${…}` is literal."""
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 1)
            name, op, arg = _split(text[i + 2:end])
            yield name, op, arg
            yield from expressions(arg)
            i = end + 1
        else:
            i += 1


def required_variables() -> dict[str, str]:
    """A dummy, URL-safe value for each variable compose refuses to run without (`:?`)."""
    return {name: f"dummy{name.lower().replace('_', '')}" for name, op, _ in expressions(COMPOSE.read_text())
            if op.endswith("?")}


def _interpolate_tree(node, variables):
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(value, variables) for value in node]
    if isinstance(node, str):
        return interpolate(node, variables)
    return node


def stack(**variables) -> dict:
    """platform/compose.yaml as Compose resolves it, with the required secrets and `variables` set."""
    return _interpolate_tree(yaml.safe_load(COMPOSE.read_text()), {**required_variables(), **variables})


def service_env(config: dict, service: str) -> dict[str, str]:
    env = config["services"][service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def service_at(config: dict, host: str, kind: str) -> dict:
    """The service a URL's host names, which must run `kind` (postgres, redis, s3)."""
    assert host in config["services"], f"{host!r} is no service of platform/compose.yaml"
    spec = config["services"][host]
    assert spec["image"].startswith(SERVICES[kind]), f"{host} runs {spec['image']}, not {kind}"
    return spec


def command(spec) -> list[str]:
    return list(spec) if isinstance(spec, list) else shlex.split(spec)


def published_ports(service: dict) -> list[tuple[str, int]]:
    """(host part, container port) of each `ports` entry, short or long syntax."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.append((str(entry.get("published", "")), int(entry["target"])))
        else:
            host, _, container = str(entry).rpartition(":")
            ports.append((host, int(container.split("/")[0])))
    return ports


# --- Command lines ----------------------------------------------------------------------------------

ALIASES = {"-A": "--app", "-b": "--bind", "-w": "--workers", "-c": "--concurrency", "-l": "--loglevel",
           "-P": "--pool", "-d": "--destination", "-s": "--schedule", "-t": "--timeout"}


@dataclass
class CommandLine:
    program: str
    positional: list[str] = field(default_factory=list)
    options: dict[str, str | None] = field(default_factory=dict)


def parse_command(tokens: list[str]) -> CommandLine:
    """Program, positional arguments and options (`--x v`, `--x=v`, flags as None) of a command."""
    if tokens and tokens[0] == "exec":
        tokens = tokens[1:]
    line = CommandLine(Path(tokens[0]).name)
    i = 1
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("-") and token != "-":
            name, eq, value = token.partition("=")
            name = ALIASES.get(name, name)
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if eq:
                line.options[name] = value
            elif following is not None and (following == "-" or not following.startswith("-")) \
                    and not name.startswith("--without") and name != "--noinput":
                line.options[name] = following
                i += 1
            else:
                line.options[name] = None
        else:
            line.positional.append(token)
        i += 1
    return line


def procfile() -> dict[str, CommandLine]:
    """`name: command` lines of platform/Procfile; of a `a && b` command, the program it ends in."""
    processes = {}
    for raw in PROCFILE.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        name, _, cmd = raw.partition(":")
        processes[name.strip()] = parse_command(shlex.split(cmd.split("&&")[-1]))
    return processes


# --- Dockerfile ---------------------------------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str
    args: str
    heredoc: str = ""


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [ins for ins in self.instructions if ins.keyword == keyword]


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of platform/Dockerfile (continuations and heredocs joined)."""
    lines, i = DOCKERFILE.read_text().splitlines(), 0
    instructions = []
    while i < len(lines):
        line, i = lines[i], i + 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.rstrip().endswith("\\") and i < len(lines):
            following, i = lines[i], i + 1
            if not following.lstrip().startswith("#"):
                line = line.rstrip()[:-1] + " " + following.strip()
        keyword, _, args = line.strip().partition(" ")
        heredoc = []
        if match := re.search(r"<<-?[\"']?(\w+)[\"']?", args):
            while i < len(lines) and lines[i].strip() != match.group(1):
                heredoc.append(lines[i])
                i += 1
            i += 1
        instructions.append(Instruction(keyword.upper(), args.strip(), "\n".join(heredoc)))
    global_args, stages = {}, []
    for ins in instructions:
        if ins.keyword == "FROM":
            parts = ins.args.split()
            name = parts[2] if len(parts) > 2 and parts[1].lower() == "as" else str(len(stages))
            stages.append(Stage(parts[0], name, []))
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword == "ARG":
            key, _, value = ins.args.partition("=")
            global_args[key] = value
    return global_args, stages


def stage_env(global_args: dict, stage: Stage) -> dict[str, str]:
    """The environment a stage's ENV lines set, with ARG and earlier ENV values substituted."""
    known, env = {}, {}
    for ins in stage.instructions:
        if ins.keyword == "ARG":
            key, eq, value = ins.args.partition("=")
            known[key] = value if eq else global_args.get(key, "")
        elif ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, _, value = pair.partition("=")
                value = re.sub(r"\$\{?(\w+)\}?", lambda m: known.get(m.group(1), m.group(0)), value)
                env[key] = known[key] = value
    return env


def dockerfile_cmd(global_args: dict, stage: Stage) -> list[str]:
    args = stage.all("CMD")[-1].args
    tokens = json.loads(args) if args.startswith("[") else shlex.split(args)
    env = stage_env(global_args, stage)
    return [re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), m.group(0)), token) for token in tokens]


def models_named_in_dockerfile(global_args: dict, stages: list[Stage]) -> set[str]:
    names = {model for model in global_args.get("BG_REMOVE_MODELS", "").split(",") if model}
    for stage in stages:
        for ins in stage.all("RUN"):
            if match := re.search(r"provision_models((?:\s+[a-z0-9]+)*)", ins.args):
                names |= set(match.group(1).split())
    return names


# === The tests =========================================================================================

def test_the_settings_reader_sees_what_config_settings_reads():
    # Guards the tests below against passing vacuously if settings.py changes how it reads.
    reads = settings_reads()
    assert set(PRODUCTION_REQUIRED) <= set(reads) and len(reads) > 20, sorted(reads)


def test_every_app_service_gets_the_same_environment_of_settings_the_code_reads():
    config, reads = stack(), settings_reads()
    from_image = {name for name, spec in config["services"].items()
                  if "build" in spec or spec.get("image") == config["services"]["web"]["image"]}
    assert from_image == set(APP_SERVICES)
    web = service_env(config, "web")
    for name in APP_SERVICES:
        env = service_env(config, name)
        unknown = sorted(set(env) - set(reads))
        assert not unknown, f"{name} sets {unknown}, which config/settings.py never reads"
        assert env == web, f"{name}'s environment differs from web's"


def test_every_setting_is_passed_to_the_stack_or_left_out_for_a_reason():
    reads, env = settings_reads(), service_env(stack(), "web")
    missing = sorted(set(reads) - set(env) - set(NOT_PASSED))
    assert not missing, f"add {missing} to x-app-env in platform/compose.yaml (and env.example), or to NOT_PASSED"
    assert not set(NOT_PASSED) - set(reads), "NOT_PASSED names a setting config/settings.py no longer reads"
    assert not set(NOT_PASSED) & set(env)


def test_production_settings_are_set_for_web_and_worker_and_the_secret_has_no_default():
    config = stack()
    for service in APP_SERVICES:
        env = service_env(config, service)
        for name in PRODUCTION_REQUIRED:
            assert env.get(name), f"{service}: {name} is not set"
    without_secret = required_variables()
    del without_secret["DJANGO_SECRET_KEY"]
    with pytest.raises(MissingVariableError, match="DJANGO_SECRET_KEY"):
        _interpolate_tree(yaml.safe_load(COMPOSE.read_text()), without_secret)


def test_only_web_publishes_a_port():
    config = stack()
    assert [name for name, spec in config["services"].items() if spec.get("ports")] == ["web"]


@pytest.mark.parametrize("variables", [{}, {"POSTGRES_USER": "alice", "POSTGRES_DB": "renders"}])
def test_database_url_points_at_the_postgres_service(variables):
    config = stack(**variables)
    url = urlsplit(service_env(config, "web")["DATABASE_URL"])
    assert url.scheme in ("postgres", "postgresql")
    postgres = service_at(config, url.hostname, "postgres")
    pg_env = postgres["environment"]
    assert "PGPORT" not in pg_env and (url.port or 5432) == 5432  # Where the server listens.
    assert url.path.lstrip("/") == pg_env["POSTGRES_DB"]
    assert (url.username, url.password) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"])


def test_redis_url_points_at_the_redis_service():
    config = stack()
    url = urlsplit(service_env(config, "web")["REDIS_URL"])
    assert url.scheme == "redis" and (url.port or 6379) == 6379
    redis = service_at(config, url.hostname, "redis")
    assert "--port" not in command(redis.get("command", []))


def test_s3_endpoint_and_credentials_are_those_of_the_s3_service():
    config = stack(AWS_ACCESS_KEY_ID="key-id")
    env = service_env(config, "web")
    url = urlsplit(env["AWS_S3_ENDPOINT_URL"])
    s3 = service_at(config, url.hostname, "s3")
    options = parse_command(["weed", *command(s3["command"])]).options
    assert url.port == int(options.get("-s3.port", 8333))
    assert f":{url.port}/healthz" in " ".join(s3["healthcheck"]["test"])
    mount = next(c for c in s3["configs"] if c["target"] == options["-s3.config"])
    identities = json.loads(config["configs"][mount["source"]]["content"])["identities"]
    credentials = [c for identity in identities for c in identity["credentials"]
                   if {"Read", "Write", "Admin"} <= set(identity["actions"])]
    assert {"accessKey": env["AWS_ACCESS_KEY_ID"], "secretKey": env["AWS_SECRET_ACCESS_KEY"]} in credentials
    createbucket = config["services"]["createbucket"]
    assert "create_bucket" in " ".join(command(createbucket["command"]))
    assert createbucket["depends_on"][url.hostname]["condition"] == "service_healthy"


def _serves_the_front(line: CommandLine):
    """granian serves config/rsgi.py's front (bodies received before a thread runs a request)
    around settings.WSGI_APPLICATION, with its threads from WEB_THREADS, not granian's."""
    from django.conf import settings

    assert line.program == "granian" and line.options["--interface"] == "rsgi"
    assert line.positional[0] == "config.rsgi:application"
    assert "--blocking-threads" not in line.options and "--no-ws" in line.options
    source = (ROOT / "config" / "rsgi.py").read_text()
    assert settings.WSGI_APPLICATION == "config.wsgi.application"
    assert "from config.wsgi import application" in source and "settings.WEB_THREADS" in source


def test_web_serves_config_rsgi_on_the_port_it_publishes():
    config = stack(PORT="9000")
    web = config["services"]["web"]
    line = parse_command(command(web["command"]))
    _serves_the_front(line)
    host, port = line.options["--host"], line.options["--port"]
    assert host == "0.0.0.0"  # Reachable from outside the container.
    assert published_ports(web) == [("9000", int(port))]
    assert "/healthz" in " ".join(web["healthcheck"]["test"])


def test_worker_runs_the_celery_app_of_config_with_slots_matching_its_concurrency():
    from celery.app.utils import find_app

    from config.celery_app import app

    tree = ast.parse(CELERY_APP.read_text())
    assert any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "app" for t in node.targets)
               for node in tree.body), "config/celery_app.py must define `app`"
    for variables, concurrency in (({}, "2"), ({"WORKER_CONCURRENCY": "7"}, "7")):
        resolved = stack(**variables)
        line = parse_command(command(resolved["services"]["worker"]["command"]))
        assert (line.program, line.positional[:1]) == ("celery", ["worker"])
        assert find_app(line.options["--app"]) is app  # What `celery -A config` loads.
        assert line.options["--concurrency"] == concurrency
        assert service_env(resolved, "worker")["BG_REMOVE_WORKER_SLOTS"] == concurrency
    health = " ".join(stack()["services"]["worker"]["healthcheck"]["test"])
    assert "inspect ping" in health and "celery@$HOSTNAME" in health


def test_cutouts_and_webhooks_run_in_separate_processes_on_separate_queues():
    """The cutout worker consumes the job queue only; the webhooks process the webhook and usage
    queues the tasks are routed to, on a node name of its own (its health check pings that)."""
    from django.conf import settings

    from cutouts.tasks import bg_remove_job_run
    from usage.tasks import usage_persist_run
    from webhooks.tasks import webhook_deliver

    def queue_of(task):
        return (task.app.amqp.router.route({}, task.name) or {}).get("queue").name

    for variables, base in (({}, "cutout"), ({"CELERY_QUEUE": "blue"}, "blue")):
        services = stack(**variables)["services"]
        worker = parse_command(command(services["worker"]["command"]))
        webhooks = parse_command(command(services["webhooks"]["command"]))
        assert worker.options["--queues"] == base
        assert webhooks.options["--queues"].split(",") == [f"{base}-webhooks", f"{base}-usage"]
        assert webhooks.options["--hostname"] == "webhooks@%h"
    procs = procfile()
    assert procs["worker"].options["--queues"] == "${CELERY_QUEUE:-cutout}"
    assert procs["webhooks"].options["--queues"] == "${CELERY_QUEUE:-cutout}-webhooks,${CELERY_QUEUE:-cutout}-usage"
    assert "webhooks@$HOSTNAME" in " ".join(stack()["services"]["webhooks"]["healthcheck"]["test"])
    base = settings.CELERY_TASK_DEFAULT_QUEUE
    assert queue_of(bg_remove_job_run) == base
    assert queue_of(webhook_deliver) == settings.CELERY_WEBHOOK_QUEUE == f"{base}-webhooks"
    assert queue_of(usage_persist_run) == settings.CELERY_USAGE_QUEUE == f"{base}-usage"


def test_beat_is_one_instance_of_the_same_app_writing_where_the_image_allows():
    global_args, stages = dockerfile()
    var_dir = stage_env(global_args, stages[-1])["CUTOUT_VAR_DIR"]
    beat = stack()["services"]["beat"]
    line = parse_command(command(beat["command"]))
    assert (line.program, line.positional[:1], line.options["--app"]) == ("celery", ["beat"], "config")
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert line.options["--schedule"].startswith(var_dir + "/")
    assert line.options["--schedule"] in " ".join(beat["healthcheck"]["test"])


def test_migrate_runs_once_before_web_and_worker():
    services = stack()["services"]
    migrate = services["migrate"]
    assert command(migrate["command"])[:3] == ["python", "manage.py", "migrate"]
    assert migrate["restart"] == "no"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_long_running_services_are_restarted_when_they_die():
    # A dead worker comes back by itself (and /readyz says so meanwhile: docs/deploy.md).
    services = stack()["services"]
    for name in ("web", "worker", "webhooks", "beat"):
        assert services[name].get("restart") in ("always", "unless-stopped"), name


def test_dependencies_exist_and_what_is_waited_on_can_say_so():
    services = stack()["services"]
    for name, spec in services.items():
        depends = spec.get("depends_on") or {}
        for dependency, how in (depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)):
            assert dependency in services, f"{name} depends on undefined {dependency}"
            condition = how.get("condition", "service_started")
            check = services[dependency].get("healthcheck") or {}
            if condition == "service_healthy":
                assert check.get("test") and not check.get("disable"), f"{dependency} has no health check"
            elif condition == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} is not a one-shot job"


def test_app_services_other_than_web_replace_the_image_health_check():
    # The image's HEALTHCHECK asks the web server, which only web runs.
    services = stack()["services"]
    for name in APP_SERVICES:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") or check.get("disable"), f"{name} inherits the web health check"


def test_compose_builds_the_dockerfile_from_the_repository_root():
    build = stack()["services"]["web"]["build"]
    assert (PLATFORM / build["context"]).resolve() == ROOT.resolve()
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE.resolve()
    ignored = set(DOCKERIGNORE.read_text().split())
    assert {".git", ".venv", "var", "staticfiles", "**/.env"} <= ignored


def test_dockerfile_is_multi_stage_and_runs_as_a_non_root_user():
    _, stages = dockerfile()
    assert len(stages) >= 2
    final = stages[-1]
    user = final.all("USER")[-1].args.split(":")[0]
    assert user not in ("root", "0")
    earlier = {stage.name for stage in stages[:-1]}
    assert {re.search(r"--from=(\S+)", ins.args).group(1) for ins in final.all("COPY") if "--from=" in ins.args} <= earlier


def test_dockerfile_provisions_the_models_with_their_checksums_at_build_time():
    from core.model_files import MODELS

    global_args, stages = dockerfile()
    builders = stages[:-1]
    provision = [ins.args for stage in builders for ins in stage.all("RUN") if "manage.py provision_models" in ins.args]
    assert provision and "BG_REMOVE_MODEL_HOME=/opt/models" in provision[0]
    named = models_named_in_dockerfile(global_args, stages)
    assert named and named <= set(MODELS), f"{sorted(named - set(MODELS))} are not models bg_remove knows"
    assert settings_reads()["BG_REMOVE_DEFAULT_MODEL"].default_text in named
    final = stages[-1]
    env = stage_env(global_args, final)
    assert env["BG_REMOVE_MODEL_HOME"] == "/opt/models"
    assert set(env["BG_REMOVE_MODELS"].split(",")) == named
    assert any(re.fullmatch(r"--from=\S+ /opt/models /opt/models", ins.args) for ins in final.all("COPY"))
    compose_models = stack()["services"]["web"]["build"]["args"]["BG_REMOVE_MODELS"]
    assert set(compose_models.split(",")) == named


def test_dockerfile_serves_config_rsgi_on_the_port_it_exposes_and_checks_healthz():
    global_args, stages = dockerfile()
    final = stages[-1]
    env = stage_env(global_args, final)
    line = parse_command(dockerfile_cmd(global_args, final))
    _serves_the_front(line)
    assert (line.options["--host"], line.options["--port"]) == ("0.0.0.0", env["PORT"])
    assert final.all("EXPOSE")[-1].args == env["PORT"]
    healthcheck = final.all("HEALTHCHECK")[-1].args
    assert "/healthz" in healthcheck
    for name in ("CUTOUT_VAR_DIR", "BG_REMOVE_MODEL_HOME", "BG_REMOVE_MODELS"):
        assert name in env, f"NOT_PASSED says the image sets {name}"


def test_each_app_container_records_metrics_in_a_folder_fresh_at_each_start():
    # core/metrics.py sums the processes' files there; stale files would carry old counts over.
    global_args, stages = dockerfile()
    folder = stage_env(global_args, stages[-1])["PROMETHEUS_MULTIPROC_DIR"]
    services = stack()["services"]
    for name in ("web", "worker"):
        assert folder in (services[name].get("tmpfs") or []), f"{name} has no tmpfs at {folder}"


def _same_process(name: str, expected: CommandLine, actual: CommandLine, where: str):
    assert actual.program == expected.program, f"{where} {name} runs {actual.program}"
    if expected.program == "granian":
        assert actual.positional[0] == expected.positional[0]
    else:
        assert actual.options["--app"] == expected.options["--app"]
        assert actual.positional[:1] == expected.positional[:1]
    assert set(actual.options) == set(expected.options), \
        f"{where} {name}: options {sorted(set(actual.options) ^ set(expected.options))} differ from platform/Procfile's"
    for option, value in expected.options.items():
        if value is None or "$" not in value:
            assert actual.options[option] == value, f"{where} {name}: {option} is not {value!r}"


def test_procfile_processes_run_the_same_commands_as_the_stack_and_the_image():
    processes = procfile()
    assert {"web", "worker"} <= set(processes)
    services = stack()["services"]
    for name, expected in processes.items():
        assert name in services, f"platform/compose.yaml has no {name} service"
        _same_process(name, expected, parse_command(command(services[name]["command"])), "compose.yaml")
    global_args, stages = dockerfile()
    _same_process("web", processes["web"], parse_command(dockerfile_cmd(global_args, stages[-1])), "Dockerfile CMD")


PROBE = """
import json
from django.conf import settings
import django
django.setup()
db, storage = settings.DATABASES["default"], settings.STORAGES["default"]
print(json.dumps({
    "debug": settings.DEBUG, "db": [db["ENGINE"], db["HOST"], db["PORT"], db["NAME"]],
    "broker": settings.CELERY_BROKER_URL, "redis": settings.REDIS_URL, "cache": settings.CACHES["default"],
    "storage": storage["BACKEND"], "bucket": storage["OPTIONS"].get("bucket_name"),
    "endpoint": storage["OPTIONS"].get("endpoint_url"), "hosts": settings.ALLOWED_HOSTS,
    "models": settings.BG_REMOVE_MODELS, "model_home": str(settings.BG_REMOVE_MODEL_HOME),
    "slots": settings.BG_REMOVE_WORKER_SLOTS,
}))
"""


def test_settings_under_the_stack_environment_select_postgres_redis_and_s3(tmp_path):
    global_args, stages = dockerfile()
    image_env = {k: v for k, v in stage_env(global_args, stages[-1]).items() if k != "PATH"}
    # The one folder of the image the code writes to at import (the stack mounts a tmpfs there).
    image_env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    compose_env = service_env(stack(), "web")
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings", **image_env, **compose_env}
    env["CUTOUT_ENV_FILE"] = os.devnull  # As in the image: a checkout's development .env is not copied.
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["debug"] is False
    assert values["db"] == ["core.postgresql", "postgres", 5432, "cutout"]
    assert values["broker"] == values["redis"] == compose_env["REDIS_URL"]
    assert values["cache"]["BACKEND"].endswith("RedisCache") and values["cache"]["LOCATION"] == values["redis"]
    assert values["storage"] == "storages.backends.s3.S3Storage"
    assert (values["bucket"], values["endpoint"]) == ("cutout", "http://s3:8333")
    assert "localhost" in values["hosts"]  # The Host header of the image's health check.
    assert values["models"] == ["u2netp"] and values["model_home"] == "/opt/models"
    assert values["slots"] == 2
    # The system checks pass under it too (no database is contacted).
    check = subprocess.run([sys.executable, "manage.py", "check", "--fail-level", "ERROR"], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def _env_example() -> dict[str, tuple[str, bool]]:
    """NAME → (value, commented) of platform/env.example."""
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"(# )?([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            entries[match.group(2)] = (match.group(3), bool(match.group(1)))
    return entries


def test_env_example_names_every_variable_compose_reads_with_its_default():
    found = list(expressions(COMPOSE.read_text()))
    compose_defaults: dict[str, set] = {}
    for name, op, arg in found:
        if op == ":-" and arg:
            compose_defaults.setdefault(name, set()).add(interpolate(arg, {}))
    assert all(len(values) == 1 for values in compose_defaults.values()), compose_defaults
    entries, reads = _env_example(), settings_reads()
    assert set(entries) == {name for name, _, _ in found}
    for name in required_variables():
        assert entries[name] == ("", False), f"{name} must be an empty, uncommented line to fill in"
    for name, (value, commented) in entries.items():
        if not commented or not value:
            continue
        default = next(iter(compose_defaults[name])) if name in compose_defaults else reads[name].default_text
        assert value == default, f"env.example shows {name}={value}, but the default is {default!r}"


def test_deploy_doc_lists_every_setting_with_its_default_and_every_service():
    text = DEPLOY_DOC.read_text()
    for name, read in settings_reads().items():
        row = re.search(rf"^\| `{name}` \|([^|]*)\|", text, re.MULTILINE)
        assert row, f"docs/deploy.md has no settings row for {name}"
        if read.default_text:
            assert f"`{read.default_text}`" in row.group(1), f"docs/deploy.md: {name}'s default is {read.default_text}"
    for service in stack()["services"]:
        assert f"`{service}`" in text, f"docs/deploy.md does not describe the {service} service"


def _wait_for(check, what: str, timeout: float = 90, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, f"{what}: {result.stdout}{result.stderr}"
            return
        time.sleep(every)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.s3
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_stacks_own_commands_and_health_checks_serve_a_cutout(tmp_path, settings, moto_server):
    """platform/compose.yaml's commands and health checks, run as its containers would, minus Docker.

    Only the addresses change: this machine's PostgreSQL and Redis, the moto S3 server, free ports
    and folders. The bucket does not exist until the stack's createbucket job makes it.
    """
    import boto3
    from django.db import connection

    from tests.factories import AccountFactory, SourceFactory

    # The run's own queue, in the commands too (--queues), as platform/.env would set it for both.
    config = stack(CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE)
    global_args, stages = dockerfile()
    port, var, bucket = free_port(), tmp_path / "var", f"platform-{os.getpid()}"
    origins = tmp_path / "origins"
    (origins / "photos").mkdir(parents=True)
    (origins / "photos" / "astronaut.jpg").write_bytes((FIXTURES / "astronaut.jpg").read_bytes())
    (tmp_path / "prometheus").mkdir()
    var.mkdir()  # The image creates its CUTOUT_VAR_DIR, writable by the app user.
    db = connection.settings_dict
    env = {
        **{k: v for k, v in stage_env(global_args, stages[-1]).items() if k not in ("PATH", "NUMBA_CACHE_DIR")},
        **service_env(config, "web"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOSTNAME": socket.gethostname(), "PORT": str(port),
        "CUTOUT_VAR_DIR": str(var), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "BG_REMOVE_MODEL_HOME": str(settings.BG_REMOVE_MODEL_HOME), "ORIGIN_LOCAL_ROOT": str(origins),
        "DATABASE_URL": f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}@{db['HOST'] or '127.0.0.1'}"
                        f":{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL, "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "AWS_S3_ENDPOINT_URL": moto_server, "AWS_STORAGE_BUCKET_NAME": bucket, **S3_CREDENTIALS,
        "CUTOUT_ENV_FILE": os.devnull,  # The image has no development .env.
    }
    image_var = stage_env(global_args, stages[-1])["CUTOUT_VAR_DIR"]

    def run(service: str) -> list[str]:
        tokens = [token.replace(image_var, str(var)) for token in command(config["services"][service]["command"])]
        # The container's address and port become this machine's loopback and a free port.
        tokens = ["127.0.0.1" if token == "0.0.0.0" else token for token in tokens]
        return [str(port) if before == "--port" else token for before, token in zip(["", *tokens], tokens)]

    def check(service: str):
        test = [token.replace(image_var, str(var)) for token in config["services"][service]["healthcheck"]["test"]]
        argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    for job in ("migrate", "createbucket"):
        done = subprocess.run(run(job), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{job}: {done.stdout}{done.stderr}"
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.head_bucket(Bucket=bucket)

    account = AccountFactory(slug="platform", bg_remove_enabled=True)
    SourceFactory(account=account, slug="platform-photos", kind="local", local_path="photos")

    # The image's health check script, from the Dockerfile's heredoc.
    script = next(ins.heredoc for ins in stages[-1].all("COPY") if "cutout-healthcheck" in ins.args)
    healthcheck = tmp_path / "cutout-healthcheck"
    healthcheck.write_text(f"#!{sys.executable}\n" + script.split("\n", 1)[1])
    healthcheck.chmod(0o755)
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"

    processes = {}
    try:
        for service in ("web", "worker", "webhooks", "beat"):
            log = (tmp_path / f"{service}.log").open("wb")
            processes[service] = subprocess.Popen(run(service), cwd=ROOT, env=env, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(port, timeout=60, proc=processes["web"])
        _wait_for(lambda: check("web"), "web health check")
        # Ready once the worker consumes the job queue (it loads the model first).
        _wait_for(lambda: subprocess.run(["cutout-healthcheck", "/readyz"], env=env, capture_output=True, text=True),
                  "/readyz")

        url = f"http://127.0.0.1:{port}/render/platform-photos/astronaut.jpg?bg-remove=true"
        first = requests.get(url, headers={"Host": "localhost"}, timeout=30)
        assert first.status_code == 202, first.text
        deadline = time.monotonic() + 90
        response = first
        while response.status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.5)
            response = requests.get(url, headers={"Host": "localhost"}, timeout=30)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/png", response.text
        assert Image.open(io.BytesIO(response.content)).getchannel("A").getextrema() == (0, 255)
        assert client.list_objects_v2(Bucket=bucket)["KeyCount"] >= 1  # Stored in the shared bucket.

        _wait_for(lambda: check("worker"), "worker health check", every=2)
        _wait_for(lambda: check("webhooks"), "webhooks health check", every=2)
        _wait_for(lambda: check("beat"), "beat health check", timeout=30)
    finally:
        for process in processes.values():
            stop_process(process)
