"""systemd's LoadCredential=: the admin keys and the client token read from
$CREDENTIALS_DIRECTORY when no option names their files, in memory (``environ=``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.answers import AUTH, TOKEN
from tests.support.fake_admin import PROJECTS, FakeAdmin, sample_org
from tests.support.fake_anthropic import ADMIN_KEY as ANTHROPIC_ADMIN_KEY
from tests.support.fake_anthropic import WORKSPACES, FakeAnthropic
from tests.support.fake_openai import FakeOpenAI
from tests.support.memory import InMemoryProxy

COSTS = "/v1/organization/costs"
CLIENT_TOKEN = "team-secret-from-systemd"
MakeProxy = Callable[..., InMemoryProxy]


@pytest.fixture
def admin(fake: FakeOpenAI) -> FakeAdmin:
    return FakeAdmin(fake, sample_org())


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    """What systemd makes of the shipped unit's LoadCredential= lines."""
    directory = tmp_path / "credentials"
    directory.mkdir()
    (directory / "openai-admin-key").write_text(TOKEN + "\n")
    (directory / "client-token").write_text(CLIENT_TOKEN + "\n")
    for credential in directory.iterdir():
        credential.chmod(0o400)
    return directory


def discovery_key(proxy: InMemoryProxy, admin: FakeAdmin) -> bytes | None:
    """The Authorization header of discovery's first call, once the service has started."""
    proxy.start_service()
    proxy.flush()
    calls = admin.requests_for(PROJECTS)
    return calls[0].header("Authorization") if calls else None


def test_the_admin_key_and_client_token_come_from_the_credentials_directory(
        make_proxy: MakeProxy, admin: FakeAdmin, credentials: Path) -> None:
    proxy = make_proxy(environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert discovery_key(proxy, admin) == f"Bearer {TOKEN}".encode()
    assert proxy.get(COSTS + "?start_time=1").status == 401  # the token is now required
    assert proxy.get(COSTS + "?start_time=1", headers={**AUTH, "X-Orgproxy-Token": CLIENT_TOKEN}).status == 200


def test_an_option_naming_a_file_wins_over_the_credential(make_proxy: MakeProxy, admin: FakeAdmin,
                                                          credentials: Path, tmp_path: Path) -> None:
    key_file, token_file = tmp_path / "key", tmp_path / "token"
    key_file.write_text("sk-admin-from-the-option\n")
    token_file.write_text("token-from-the-option\n")
    key_file.chmod(0o600)
    proxy = make_proxy("--admin-key-file", str(key_file),
                       environ={"CREDENTIALS_DIRECTORY": str(credentials),
                                "ORGPROXY_CLIENT_TOKEN_FILE": str(token_file)})
    assert discovery_key(proxy, admin) == b"Bearer sk-admin-from-the-option"
    assert proxy.get(COSTS + "?start_time=1", headers={**AUTH, "X-Orgproxy-Token": CLIENT_TOKEN}).status == 401
    assert proxy.get(COSTS + "?start_time=1",
                     headers={**AUTH, "X-Orgproxy-Token": "token-from-the-option"}).status == 200


def test_the_credential_wins_over_openai_admin_key(make_proxy: MakeProxy, admin: FakeAdmin,
                                                   credentials: Path) -> None:
    proxy = make_proxy(environ={"CREDENTIALS_DIRECTORY": str(credentials),
                                "OPENAI_ADMIN_KEY": "sk-admin-inherited-from-somewhere"})
    assert discovery_key(proxy, admin) == f"Bearer {TOKEN}".encode()


def test_a_credentials_directory_without_them_changes_nothing(make_proxy: MakeProxy, admin: FakeAdmin,
                                                              tmp_path: Path) -> None:
    empty = tmp_path / "credentials"
    empty.mkdir()
    proxy = make_proxy(environ={"CREDENTIALS_DIRECTORY": str(empty)})
    assert (proxy.options["admin-key-file"], proxy.options["client-token-file"]) == (None, None)
    assert discovery_key(proxy, admin) is None  # no key: no discovery
    assert proxy.get(COSTS + "?start_time=1").status == 200  # no token required


def test_anthropic_s_admin_key_comes_from_its_credential_and_wins_over_its_variable(
        make_proxy: MakeProxy, fake_anthropic: FakeAnthropic, credentials: Path) -> None:
    (credentials / "anthropic-admin-key").write_text(ANTHROPIC_ADMIN_KEY + "\n")
    (credentials / "anthropic-admin-key").chmod(0o400)
    proxy = make_proxy(environ={"CREDENTIALS_DIRECTORY": str(credentials),
                                "ANTHROPIC_ADMIN_KEY": "sk-ant-admin01-inherited-from-somewhere"})
    assert proxy.options["anthropic-admin-key-file"] == str(credentials / "anthropic-admin-key")
    proxy.start_service()
    proxy.flush()
    walked = [r for r in fake_anthropic.received if r.path == WORKSPACES.encode()]
    assert walked and {r.header("x-api-key") for r in walked} == {ANTHROPIC_ADMIN_KEY.encode()}
