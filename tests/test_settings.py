"""Settings: TOML file, PACS_* overrides, validation, and the check-config output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pacs.core.errors import ConfigError
from pacs.settings import describe, load_settings

SAMPLE = """
[server]
data_dir = "/srv/pacs"
[dimse]
ae_title = "HOSPITAL_PACS"
port = 104
accept_unknown_callers = false
[http]
port = 8080
[index]
url = "postgresql://pacs@db/pacs"
[[modalities]]
name = "ct1"
ae_title = "CT1"
host = "192.168.1.20"
port = 104
"""


def test_defaults_need_no_file() -> None:
    settings = load_settings(environ={})
    assert settings.dimse.ae_title == "PACS"
    assert settings.dimse.port == 11112
    assert settings.http.port == 8042
    assert settings.index_url.startswith("sqlite:///")
    assert settings.index_url.endswith("pacs-data/index.sqlite")


def test_toml_file_is_read(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text(SAMPLE)
    settings = load_settings(config, environ={})
    assert settings.server.data_dir == Path("/srv/pacs")
    assert settings.dimse.ae_title == "HOSPITAL_PACS"
    assert settings.dimse.accept_unknown_callers is False
    assert settings.index_url == "postgresql://pacs@db/pacs"
    assert settings.modality_by_ae("CT1") is not None
    assert settings.modality_by_ae("CT1").port == 104  # type: ignore[union-attr]
    assert settings.modality_by_ae("MR1") is None


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text(SAMPLE)
    settings = load_settings(
        config,
        environ={
            "PACS_DIMSE_PORT": "4242",
            "PACS_DIMSE_ACCEPT_UNKNOWN_CALLERS": "true",
            "PACS_SERVER_DATA_DIR": "/data",
            "OTHER": "x",
        },
    )
    assert settings.dimse.port == 4242
    assert settings.dimse.accept_unknown_callers is True
    assert settings.server.data_dir == Path("/data")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dimse]\nport = 'abc'\n", "expected an integer"),
        ("[dimse]\nnosuchkey = 1\n", "unknown key"),
        ("[nosection]\n", "unknown section"),
        ("[dimse]\nae_title = 'THIS_TITLE_IS_FAR_TOO_LONG'\n", "AE title"),
        ("[dimse]\nduplicate_policy = 'sometimes'\n", "expected one of"),
        ("[[modalities]]\nname = 'x'\n", "missing"),
        ("[dimse\n", "invalid TOML"),
    ],
)
def test_invalid_configuration_is_refused(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_describe_documents_every_key(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text(SAMPLE)
    text = describe(load_settings(config, environ={}))
    assert 'ae_title = "HOSPITAL_PACS"' in text
    assert "accept_unknown_callers = false" in text
    assert "# Our AE title" in text
    assert "[[modalities]]" in text


def test_check_config_command(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text(SAMPLE)
    done = subprocess.run(
        [sys.executable, "-m", "pacs", "--config", str(config), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "port = 104" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[dimse]\nport = 'x'\n")
    done = subprocess.run(
        [sys.executable, "-m", "pacs", "check-config", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "configuration error" in done.stderr
