"""Authentication on the whole HTTP port, driven through real servers and real clients
(pyorthanc, orthanc-api-client, dicomweb-client, requests)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyorthanc
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from orthanc_api_client import OrthancApiClient
from orthanc_api_client.exceptions import HttpError

from pacs.core.errors import ConfigError
from pacs.http_auth import CredentialCache
from pacs.passwords import hash_password, hash_token, parse_password_hash
from pacs.settings import load_settings
from tests.conftest import REPO, RunningServer, start_server, wait_for_port
from tests.factories import make_image, make_series, new_uid, to_bytes

PASSWORD = "correct horse battery"
TOKEN = "tok-0123456789abcdef0123456789abcdef"
BASIC = ("alice", PASSWORD)


def _start(factory: pytest.TempPathFactory, name: str, http_options: str) -> RunningServer:
    server = start_server(factory.mktemp(name), name=name, http_options=http_options)
    wait_for_port(server.http_port, process=server.process)
    return server


def _credentials() -> str:
    return (
        f'users = {{ alice = "{hash_password(PASSWORD)}" }}\n'
        f'tokens = {{ robot = "{hash_token(TOKEN)}" }}\n'
    )


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Users configured and loopback not trusted: this test talks like a remote client."""
    server = _start(
        tmp_path_factory, "locked", "allow_loopback_without_auth = false\n" + _credentials()
    )
    yield server
    server.stop()


def _url(server: RunningServer) -> str:
    return f"http://127.0.0.1:{server.http_port}"


def test_pyorthanc_needs_credentials_to_store_not_to_read(locked: RunningServer) -> None:
    ds = make_image(patient_id="AUTH1")
    anonymous = pyorthanc.Orthanc(_url(locked))
    with pytest.raises(httpx.HTTPError, match="HTTP code: 401"):
        anonymous.post_instances(to_bytes(ds))
    raw = requests.post(f"{_url(locked)}/instances", data=to_bytes(ds), timeout=30)
    assert raw.status_code == 401
    assert raw.headers["WWW-Authenticate"].startswith('Basic realm="pacs"')
    wrong = pyorthanc.Orthanc(_url(locked), username="alice", password="not it")
    with pytest.raises(httpx.HTTPError, match="HTTP code: 401"):
        wrong.post_instances(to_bytes(ds))
    alice = pyorthanc.Orthanc(_url(locked), username="alice", password=PASSWORD)
    answer = alice.post_instances(to_bytes(ds))
    assert answer["Status"] == "Success"
    assert answer["ParentPatient"] in anonymous.get_patients()  # reads stay open
    with pytest.raises(httpx.HTTPError, match="HTTP code: 401"):
        anonymous.delete_instances_id(answer["ID"])
    alice.delete_instances_id(answer["ID"])
    assert answer["ID"] not in anonymous.get_instances()
    assert PASSWORD not in locked.log_text()


def test_orthanc_api_client_with_password_and_bearer_token(locked: RunningServer) -> None:
    series = make_series(2, study_uid=new_uid(), patient_id="AUTH2")
    with pytest.raises(HttpError) as refused:
        OrthancApiClient(_url(locked)).upload(to_bytes(series[0]))
    assert refused.value.http_status_code == 401
    [first] = OrthancApiClient(_url(locked), user="alice", pwd=PASSWORD).upload(to_bytes(series[0]))
    robot = OrthancApiClient(_url(locked), api_token=TOKEN)
    [second] = robot.upload(to_bytes(series[1]))
    assert {first, second} <= set(robot.instances.get_all_ids())
    with pytest.raises(HttpError) as bad_token:
        OrthancApiClient(_url(locked), api_token=TOKEN + "x").upload(to_bytes(series[1]))
    assert bad_token.value.http_status_code == 401


def test_stow_with_dicomweb_client(locked: RunningServer) -> None:
    series = make_series(2, study_uid=new_uid(), patient_id="AUTH3")
    root = f"{_url(locked)}/dicom-web"
    with pytest.raises(requests.HTTPError) as refused:
        DICOMwebClient(url=root).store_instances(series)
    assert refused.value.response.status_code == 401
    session = create_session_from_user_pass("alice", PASSWORD)
    result = DICOMwebClient(url=root, session=session).store_instances(series)
    assert "FailedSOPSequence" not in result
    found = DICOMwebClient(url=root).search_for_instances(  # QIDO without credentials
        search_filters={"StudyInstanceUID": str(series[0].StudyInstanceUID)}
    )
    assert len(found) == 2


def test_cors_preflight_needs_no_credentials(locked: RunningServer) -> None:
    answer = requests.options(
        f"{_url(locked)}/dicom-web/studies",
        headers={
            "Origin": "http://viewer.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
        timeout=10,
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]


def test_auth_failures_under_dicomweb_are_readable_cross_origin(locked: RunningServer) -> None:
    """A browser on another origin must see the 401/403 itself, not a network error."""
    origin = {"Origin": "http://viewer.example"}
    for headers in (origin, {**origin, "Authorization": "Basic " + "d3Jvbmc6d3Jvbmc="}):
        answer = requests.post(
            f"{_url(locked)}/dicom-web/studies", data=b"x", headers=headers, timeout=10
        )
        assert answer.status_code == 401, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert "WWW-Authenticate" in answer.headers["Access-Control-Expose-Headers"]
        assert answer.headers["WWW-Authenticate"].startswith("Basic")
    allowed = requests.get(f"{_url(locked)}/dicom-web/studies", headers=origin, timeout=10)
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == "*"
    # the Orthanc API is not opened to other origins by this
    orthanc = requests.post(f"{_url(locked)}/tools/find", json={}, headers=origin, timeout=10)
    assert orthanc.status_code == 401 and "Access-Control-Allow-Origin" not in orthanc.headers


def test_other_doors_are_guarded_too(locked: RunningServer) -> None:
    url = _url(locked)
    feedback = requests.post(f"{url}/ai/results/1/feedback", json={"verdict": "confirmed"})
    assert feedback.status_code == 401
    label = requests.put(
        f"{url}/studies/{'0' * 8}-{'0' * 8}-{'0' * 8}-{'0' * 8}-{'0' * 8}/labels/x"
    )
    assert label.status_code == 401
    assert label.json()["HttpStatus"] == 401
    assert requests.get(f"{url}/health", timeout=10).status_code == 200
    assert requests.get(f"{url}/integrity", timeout=10).status_code == 200


def test_reads_can_require_a_user(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = _start(
        tmp_path_factory,
        "closed",
        "allow_loopback_without_auth = false\nauth_required_for_reads = true\n" + _credentials(),
    )
    try:
        url = _url(server)
        with pytest.raises(httpx.HTTPError, match="HTTP code: 401"):
            pyorthanc.Orthanc(url).get_patients()
        assert pyorthanc.Orthanc(url, username="alice", password=PASSWORD).get_patients() == []
        assert requests.get(f"{url}/dicom-web/studies", timeout=10).status_code == 401
        assert requests.get(f"{url}/health", timeout=10).status_code == 200  # probes
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(f"{url}/dicom-web/studies", headers=bearer).status_code in (200, 204)
    finally:
        server.stop()


def test_no_users_and_no_loopback_refuses_changes(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = _start(tmp_path_factory, "nousers", "allow_loopback_without_auth = false\n")
    try:
        url = _url(server)
        answer = requests.post(f"{url}/instances", data=to_bytes(make_image()), timeout=30)
        assert answer.status_code == 403
        assert "pacs hash-password" in answer.json()["error"]
        assert requests.get(f"{url}/patients", timeout=10).json() == []
        stow = requests.post(
            f"{url}/dicom-web/studies", data=b"x", headers={"Origin": "http://v.example"}
        )
        assert stow.status_code == 403 and stow.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        server.stop()


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = _start(tmp_path_factory, "proxied", 'trusted_proxies = ["127.0.0.1"]\n')
    try:
        url = f"{_url(server)}/instances"
        body = to_bytes(make_image())
        remote = {"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}
        assert requests.post(url, data=body, headers=remote).status_code == 403  # no users
        local = {"X-Forwarded-For": "127.0.0.1"}
        assert requests.post(url, data=body, headers=local).status_code == 200
    finally:
        server.stop()
    server = _start(tmp_path_factory, "unproxied", "")
    try:  # no trusted proxy: the header is the client's claim and changes nothing
        spoofed = {"X-Forwarded-For": "203.0.113.9"}
        answer = requests.post(f"{_url(server)}/instances", data=body, headers=spoofed)
        assert answer.status_code == 200
    finally:
        server.stop()


def test_hash_password_command_and_settings(tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "pacs", "hash-password"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    stored = made.stdout.strip()
    assert PASSWORD not in made.stdout + made.stderr
    assert parse_password_hash(stored).matches(PASSWORD)
    assert not parse_password_hash(stored).matches(PASSWORD + "!")
    config = tmp_path / "pacs.toml"
    config.write_text(f'[http.users]\nalice = "{stored}"\n', encoding="utf-8")
    assert load_settings(config, environ={}).http.users == (("alice", stored),)
    config.write_text('[http.users]\nalice = "plain-text-password"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="scrypt"):
        load_settings(config, environ={})
    config.write_text('[http]\ntrusted_proxies = ["not an address"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings(config, environ={})


def test_credential_cache_keeps_only_what_was_verified() -> None:
    cache = CredentialCache(seconds=60, size=2)
    cache.add("alice", PASSWORD)
    assert ("alice", PASSWORD) in cache
    assert ("alice", PASSWORD + "x") not in cache
    assert ("bob", PASSWORD) not in cache
    cache.add("b", "1")
    cache.add("c", "2")
    assert ("alice", PASSWORD) not in cache  # the oldest is dropped beyond the size
    expired = CredentialCache(seconds=-1)
    expired.add("alice", PASSWORD)
    assert ("alice", PASSWORD) not in expired
