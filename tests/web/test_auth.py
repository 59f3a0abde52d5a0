"""Who may do what: open on loopback, tokens and basic-auth users with viewer/admin roles."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import VIGIL_YAML, ProjectFactory
from tests.web.conftest import NOW
from vigil import passwords
from vigil.cli import main
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.config.schema import WebConfig
from vigil.errors import ConfigError
from vigil.web.auth import authenticate, check_binding, is_loopback
from vigil.web.server import WebServer

WEB = """\
web:
  tokens:
    - {token: "${ADMIN_TOKEN}", role: admin}
    - {token: "${VIEW_TOKEN}"}
  users:
    - {name: ann, password: "${ANN_PASSWORD}", role: admin}
"""
ENV = {
    "ADMIN_TOKEN": "adm-1234567890abcdef",
    "VIEW_TOKEN": "view-4567890abcdef",
    "ANN_PASSWORD": "s3cret-pass",
}
SILENCE = {"metric": "actions", "duration": "1h", "reason": "test"}


@pytest.fixture
def guarded(project_dir: ProjectFactory) -> httpx.Client:
    project_dir.write({"vigil.yaml": VIGIL_YAML + WEB})
    project = load_project(project_dir.root, env=ENV)
    server = WebServer(project, ManualClock(NOW), "127.0.0.1", 0)
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def test_without_credentials_only_health_answers(guarded: httpx.Client) -> None:
    assert guarded.get("/api/v1/health").status_code == 200
    refused = guarded.get("/api/v1/alerts")
    assert refused.status_code == 401
    assert "Basic" in refused.headers["www-authenticate"]
    assert refused.json()["error"]["message"].startswith("credentials required")
    assert guarded.get("/").status_code == 401
    wrong = guarded.get("/api/v1/alerts", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_a_viewer_reads_but_cannot_change_or_see_the_config(guarded: httpx.Client) -> None:
    viewer = {"Authorization": "Bearer view-4567890abcdef"}
    assert guarded.get("/api/v1/alerts", headers=viewer).status_code == 200
    assert guarded.get("/alerts", headers=viewer).status_code == 200
    denied = guarded.post("/api/v1/silences", json=SILENCE, headers=viewer)
    assert denied.status_code == 403
    assert "needs the admin role" in denied.json()["error"]["message"]
    assert guarded.get("/api/v1/config", headers=viewer).status_code == 403
    assert guarded.get("/config", headers=viewer).status_code == 403


def test_admins_by_token_or_basic_auth_change_things(guarded: httpx.Client) -> None:
    made = guarded.post(
        "/api/v1/silences", json=SILENCE, headers={"Authorization": "Bearer adm-1234567890abcdef"}
    )
    assert made.status_code == 201
    assert made.json()["reason"] == "test (token 1)"
    as_ann = guarded.get("/api/v1/config", auth=("ann", "s3cret-pass"))
    assert as_ann.status_code == 200
    assert "s3cret-pass" not in as_ann.text  # secrets are redacted
    assert "adm-1234567890abcdef" not in as_ann.text
    assert guarded.get("/api/v1/config", auth=("ann", "wrong")).status_code == 401


def test_serving_beyond_this_machine_needs_credentials(project_dir: ProjectFactory) -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(ConfigError, match=r"web.host: '0.0.0.0' is reachable"):
        check_binding(WebConfig(), "0.0.0.0")
    check_binding(
        WebConfig(host="0.0.0.0", users=[{"name": "a", "password": "long-enough"}]), "0.0.0.0"
    )
    assert authenticate(WebConfig(), None) is not None  # loopback without credentials: open
    result = CliRunner().invoke(
        main, ["--project", str(project_dir.root), "serve", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 1
    assert "expected web.tokens or web.users" in result.stderr


def test_missing_token_variables_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "vigil.yaml").write_text(WEB)
    with pytest.raises(ConfigError, match="ADMIN_TOKEN"):
        load_project(tmp_path, env={})


@pytest.mark.parametrize(
    ("value", "expected"), [("", "token is empty"), ("   ", "token is empty"), ("abc", "shorter")]
)
def test_empty_or_short_tokens_are_config_errors(tmp_path: Path, value: str, expected: str) -> None:
    (tmp_path / "vigil.yaml").write_text(WEB)
    env = {**ENV, "ADMIN_TOKEN": value}
    with pytest.raises(ConfigError, match=expected):
        load_project(tmp_path, env=env)


def test_a_bearer_header_without_a_token_is_refused() -> None:
    config = WebConfig(tokens=[{"token": "a-token-long-enough", "role": "admin"}])
    assert authenticate(config, "Bearer") is None
    assert authenticate(config, "Bearer   ") is None
    assert authenticate(config, "Bearer a-token-long-enough") is not None


def test_a_hashed_password_lets_its_user_in_and_only_it(tmp_path: Path) -> None:
    printed = CliRunner().invoke(main, ["hash-password"], input="correct horse battery\n")
    assert printed.exit_code == 0, printed.output
    hashed = printed.stdout.strip()
    assert hashed.startswith("scrypt$")
    assert "correct horse" not in hashed
    (tmp_path / "vigil.yaml").write_text(
        f"web:\n  users:\n    - {{name: bo, password_hash: '{hashed}', role: admin}}\n"
    )
    config = load_project(tmp_path, env={}).settings.web
    basic = "Basic " + base64.b64encode(b"bo:correct horse battery").decode()
    found = authenticate(config, basic)
    assert found is not None
    assert found.is_admin
    wrong = "Basic " + base64.b64encode(b"bo:correct horse battery!").decode()
    assert authenticate(config, wrong) is None
    other = "Basic " + base64.b64encode(b"al:correct horse battery").decode()
    assert authenticate(config, other) is None


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("{name: bo, password_hash: 'md5$abc'}", "not a password hash"),
        ("{name: bo, password_hash: 'scrypt$3$8$1$AAAA$AAAA'}", "out of range"),
        ("{name: bo}", "give either password"),
        ("{name: bo, password: 'long-enough-1', password_hash: '%s'}", "not both"),
    ],
)
def test_bad_password_hashes_are_config_errors(tmp_path: Path, user: str, expected: str) -> None:
    if "%s" in user:
        user = user % passwords.hash_password("long-enough-1", n=2**10)
    (tmp_path / "vigil.yaml").write_text(f"web:\n  users:\n    - {user}\n")
    with pytest.raises(ConfigError, match=expected) as caught:
        load_project(tmp_path, env={})
    assert "vigil.yaml" in str(caught.value)


def test_credentials_with_any_characters_are_compared_not_crashed() -> None:
    config = WebConfig(
        tokens=[{"token": "ünïcode-token-long-enough", "role": "admin"}],
        users=[{"name": "zoë", "password": "pässwörd-long"}],
    )
    assert authenticate(config, "Bearer ünïcode-token-long-enough") is not None
    assert authenticate(config, "Bearer ünïcode-token-long-enougX") is None
    assert authenticate(config, "Bearer \udcff") is None
    basic = "Basic " + base64.b64encode("zoë:pässwörd-long".encode()).decode()
    assert authenticate(config, basic) is not None


def test_hash_password_refuses_a_short_one() -> None:
    result = CliRunner().invoke(main, ["hash-password"], input="short\n")
    assert result.exit_code == 1
    assert "shorter than 8" in result.stderr
