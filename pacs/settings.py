"""One typed, frozen settings object, read from TOML and overridden by ``PACS_*`` variables.

Every key has a default and a description (the ``doc`` metadata of each field); ``pacs
check-config`` prints the effective values.  Environment overrides are named
``PACS_<SECTION>_<KEY>`` (``PACS_DIMSE_PORT=4242``, ``PACS_SERVER_DATA_DIR=/srv/pacs``).
Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from pacs.core.charsets import DEFAULT_ENCODING, TextEncoding
from pacs.core.errors import ConfigError
from pacs.core.retention_policy import DAYS_PER_YEAR, RetentionPolicy
from pacs.core.runtime_settings import RuntimeSettings, RuntimeValues
from pacs.passwords import BadHash, parse_password_hash, parse_token_hash

DuplicatePolicy = Literal["ignore", "replace", "reject"]


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path = field(
        default=Path("./pacs-data"), metadata=_doc("Folder holding the blobs and the SQLite index.")
    )
    log_level: str = field(default="INFO", metadata=_doc("DEBUG, INFO, WARNING or ERROR."))
    log_file: str = field(
        default="", metadata=_doc("Also write the log to this file ('' = standard error only).")
    )
    default_encoding: TextEncoding = field(
        default=DEFAULT_ENCODING,
        metadata=_doc(
            "Text encoding of data sets without Specific Character Set (0008,0005), as "
            "Orthanc's DefaultEncoding: Latin1, Utf8 (modalities writing Vietnamese without "
            "declaring it), Ascii, Latin2..5, Cyrillic, Arabic, Greek, Hebrew, Thai, Japanese, "
            "Chinese, JapaneseKanji, Korean, SimplifiedChinese. PUT /tools/default-encoding "
            "changes it until the next restart."
        ),
    )


@dataclass(frozen=True)
class DimseSettings:
    ae_title: str = field(default="PACS", metadata=_doc("Our AE title (1-16 characters)."))
    host: str = field(default="0.0.0.0", metadata=_doc("Address the DICOM listener binds."))
    port: int = field(default=11112, metadata=_doc("TCP port of the DICOM listener."))
    accept_unknown_callers: bool = field(
        default=True,
        metadata=_doc(
            "false: only known AE titles ([[modalities]], or added over the REST API "
            "at /modalities) may open associations."
        ),
    )
    require_called_ae_title: bool = field(
        default=False, metadata=_doc("true: reject associations not addressed to our AE title.")
    )
    fast_store: bool = field(
        default=True,
        metadata=_doc(
            "Serve storage-only associations (modalities pushing images) with the lean "
            "built-in receiver; false: pynetdicom serves every association."
        ),
    )
    max_pdu_size: int = field(
        default=0, metadata=_doc("Maximum PDU we accept, in bytes (0 = unlimited, fastest).")
    )
    max_associations: int = field(
        default=32, metadata=_doc("Concurrent associations allowed per process.")
    )
    workers: int = field(
        default=1,
        metadata=_doc(
            "Processes sharing the DICOM port (SO_REUSEPORT); >1 spreads ingest over cores."
        ),
    )
    network_timeout: float = field(
        default=60.0,
        metadata=_doc("Seconds without network activity before an association aborts."),
    )
    acse_timeout: float = field(default=30.0, metadata=_doc("Seconds to wait for ACSE messages."))
    dimse_timeout: float = field(default=60.0, metadata=_doc("Seconds to wait for DIMSE messages."))
    duplicate_policy: DuplicatePolicy = field(
        default="ignore",
        metadata=_doc(
            "What a C-STORE of an already stored SOP Instance UID does: ignore (keep the first, "
            "answer Success), replace (keep the new one), reject (answer a failure)."
        ),
    )
    max_find_results: int = field(
        default=10000, metadata=_doc("Most matches one C-FIND returns (0 = no limit).")
    )
    max_pixels: int = field(
        default=1_000_000_000,
        metadata=_doc("Refuse images whose declared rows x columns x frames exceeds this."),
    )


@dataclass(frozen=True)
class HttpSettings:
    host: str = field(default="0.0.0.0", metadata=_doc("Address the HTTP server binds."))
    port: int = field(default=8042, metadata=_doc("TCP port of the HTTP server (0 = disabled)."))
    viewer_dir: str = field(
        default="",
        metadata=_doc(
            "Folder of the OHIF viewer served at /viewer/ (filled by `pacs install-viewer`); "
            "'' = <data_dir>/viewer."
        ),
    )
    users: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=_doc(
            "[http.users] table: user name = password hash (`pacs hash-password`). HTTP Basic "
            "users allowed to change data (and to read, when reads need auth)."
        ),
    )
    tokens: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=_doc(
            "[http.tokens] table: name = token hash (`pacs hash-password --token`), for "
            "`Authorization: Bearer <token>`; the name is the user recorded."
        ),
    )
    auth_required_for_reads: bool = field(
        default=False,
        metadata=_doc("true: GET/HEAD need a user too (else only requests that change data)."),
    )
    allow_loopback_without_auth: bool = field(
        default=True,
        metadata=_doc(
            "true: requests from this machine (127.0.0.0/8, ::1) need no user, as Orthanc's "
            "default. Set false behind a reverse proxy on this machine (or list it in "
            "trusted_proxies)."
        ),
    )
    trusted_proxies: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Addresses of reverse proxies whose X-Forwarded-For is believed (nobody else's "
            "is); the client is the last address in it that is not such a proxy."
        ),
    )


@dataclass(frozen=True)
class IndexSettings:
    url: str = field(
        default="",
        metadata=_doc(
            "sqlite:///PATH or postgresql://user@host/db; '' = sqlite in <data_dir>/index.sqlite."
        ),
    )
    batch_max: int = field(
        default=64, metadata=_doc("Most instances written in one group-commit transaction.")
    )


@dataclass(frozen=True)
class StorageSettings:
    path: str = field(
        default="", metadata=_doc("Folder of the hot blob store; '' = <data_dir>/blobs.")
    )
    fsync: bool = field(
        default=True,
        metadata=_doc("fsync every blob and its folder before acknowledging (keep true)."),
    )
    scrub_rate_mb_s: float = field(
        default=10.0,
        metadata=_doc(
            "Background scrub: re-read stored objects at most this many MB/s and check their "
            "SHA-256 against the index (0 = off). Problems are logged and shown at /integrity."
        ),
    )
    replica_path: str = field(
        default="",
        metadata=_doc(
            "Second copy of every blob, written before the store is acknowledged: a folder "
            "(e.g. a NAS mount) or an S3-compatible bucket, 's3://bucket/prefix?endpoint="
            "http://host:9000&region=us-east-1' (credentials from the AWS environment "
            "variables or config files). pacs verify --repair and the scrub restore hot copies "
            "from it. '' = no replica."
        ),
    )
    scrub_pass_hours: float = field(
        default=24.0,
        metadata=_doc("Hours between the end of one scrub pass and the start of the next."),
    )
    deletion_grace_days: float = field(
        default=30.0,
        metadata=_doc(
            "Days deleted instances stay in the trash (blobs kept, restorable with `pacs trash "
            "restore`) before they are purged; 0 = deletions are immediate and final. Every "
            "deletion is recorded either way."
        ),
    )
    retention_interval_hours: float = field(
        default=24.0,
        metadata=_doc(
            "Hours between two runs of the [[storage.retention]] policies by `pacs serve` "
            "(0 = only `pacs retention run`); expired trash is purged hourly regardless."
        ),
    )
    prefetch_priors: int = field(
        default=0,
        metadata=_doc(
            "When a new study arrives, bring this many of the patient's most recent prior "
            "studies back to the hot tier from colder [[storage.tiers]] (0 = off)."
        ),
    )
    hot_capacity_gb: float = field(
        default=0.0,
        metadata=_doc(
            "Capacity of the hot tier for the hot_fill_high/low watermarks of [[storage.tiers]]: "
            "the indexed bytes on the hot tier against this many GB; 0 = the use and size of "
            "the filesystem holding [storage] path."
        ),
    )
    tiering_interval_s: float = field(
        default=300.0,
        metadata=_doc("Seconds between two evaluations of the [[storage.tiers]] policies."),
    )
    migration_rate_mb_s: float = field(
        default=0.0,
        metadata=_doc(
            "Read at most this many MB/s when moving studies between tiers (0 = no limit)."
        ),
    )
    migration_yield_to_ingest: float = field(
        default=4.0,
        metadata=_doc(
            "While modalities store, the mover rests this many times as long as it worked, "
            "every 50 ms, before each blob (4 = at most a fifth of the time); 0 = never yields."
        ),
    )


Provider = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class AiSettings:
    enabled: bool = field(
        default=False,
        metadata=_doc("Queue series for the AI models and run the AI worker processes."),
    )
    models_dir: str = field(
        default="", metadata=_doc("Folder of models, one subfolder each; '' = <data_dir>/models.")
    )
    stable_seconds: float = field(
        default=10.0,
        metadata=_doc("A series is processed once no instance arrived for this many seconds."),
    )
    workers: int = field(
        default=1,
        metadata=_doc(
            "AI worker processes started by `pacs serve` (0 = none: run `pacs ai worker`)."
        ),
    )
    provider: Provider = field(
        default="auto",
        metadata=_doc("onnxruntime provider: auto (CUDA when present, else CPU), cpu or cuda."),
    )
    threads: int = field(
        default=1,
        metadata=_doc("CPU threads per inference session (keep low: ingest must not wait)."),
    )
    batch_size: int = field(default=8, metadata=_doc("Images per inference batch."))
    jobs_per_claim: int = field(
        default=8, metadata=_doc("Due series a worker takes at once (their images are batched).")
    )
    poll_seconds: float = field(
        default=0.5, metadata=_doc("How often an idle worker looks for due series.")
    )
    max_attempts: int = field(
        default=5, metadata=_doc("Attempts per series before its job is marked failed.")
    )
    lease_seconds: float = field(
        default=300.0,
        metadata=_doc("A claimed job whose worker vanished is taken again after this long."),
    )
    heatmaps: bool = field(
        default=True,
        metadata=_doc("Also store an occlusion heat map (Secondary Capture) for each flag."),
    )
    nice: int = field(
        default=10, metadata=_doc("Scheduling niceness of AI workers (ingest keeps priority).")
    )
    yield_to_ingest: float = field(
        default=3.0,
        metadata=_doc(
            "While modalities are storing, an AI worker rests this many times as long as it "
            "worked (3 = at most a quarter of the time); 0 = never yields."
        ),
    )


@dataclass(frozen=True)
class AiRoute:
    """Which series a model reads: every non-empty criterion must match (patterns use * and ?,
    case- and diacritic-insensitive)."""

    model: str
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    descriptions: tuple[str, ...] = ()
    view_positions: tuple[str, ...] = ()


@dataclass(frozen=True)
class TierSettings:
    """A colder storage tier (``[[storage.tiers]]``, hottest first after [storage] path) and
    when whole studies move into it."""

    name: str = field(metadata=_doc("Tier name (letters, digits, - and _; not 'hot')."))
    location: str = field(
        metadata=_doc("A folder (e.g. a NAS mount), file:///path or s3://bucket/prefix?...")
    )
    after_days_without_access: float = field(
        default=0.0,
        metadata=_doc(
            "Move studies here once not read (nor received) for this many days (0 = never)."
        ),
    )
    hot_fill_high: float = field(
        default=0.0,
        metadata=_doc(
            "When the hot tier is this % full, move its least recently read studies here "
            "(0 = no fill rule; the first tier with one applies)."
        ),
    )
    hot_fill_low: float = field(
        default=0.0, metadata=_doc("...until the hot tier is down to this % full.")
    )
    compress: str = field(
        default="",
        metadata=_doc(
            "Lossless compression of the blobs moved into this tier: 'jpeg-ls', 'jpeg2000' or "
            "'' (kept as they are). Checked bit-exact before it is written; recalls keep it."
        ),
    )


@dataclass(frozen=True)
class Modality:
    """A remote AE: a C-MOVE destination and, when callers are restricted, an allowed caller
    (``pacs.main`` hands these to the core's modality registry)."""

    name: str
    ae_title: str
    host: str
    port: int


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    dimse: DimseSettings = field(default_factory=DimseSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    ai: AiSettings = field(default_factory=AiSettings)
    modalities: tuple[Modality, ...] = ()
    ai_routes: tuple[AiRoute, ...] = ()
    retention: tuple[RetentionPolicy, ...] = ()
    tiers: tuple[TierSettings, ...] = ()

    @property
    def index_url(self) -> str:
        """The effective index URL (SQLite inside the data folder by default)."""
        return self.index.url or f"sqlite:///{self.server.data_dir / 'index.sqlite'}"

    @property
    def runtime_file(self) -> Path:
        """The settings changed over REST while the server runs (shared by its processes)."""
        return self.server.data_dir / "runtime-settings.json"

    def runtime_settings(self) -> RuntimeSettings:
        """The settings changed over REST while the server runs, from these values."""
        return RuntimeSettings(
            self.runtime_file, RuntimeValues(default_encoding=self.server.default_encoding)
        )

    @property
    def blob_dir(self) -> Path:
        """The effective folder of the hot blob store."""
        return Path(self.storage.path) if self.storage.path else self.server.data_dir / "blobs"

    @property
    def models_dir(self) -> Path:
        """The effective folder of AI models."""
        return Path(self.ai.models_dir) if self.ai.models_dir else self.server.data_dir / "models"

    @property
    def viewer_dir(self) -> Path:
        """The effective folder of the OHIF viewer's files."""
        return (
            Path(self.http.viewer_dir) if self.http.viewer_dir else self.server.data_dir / "viewer"
        )

    def modality_by_ae(self, ae_title: str) -> Modality | None:
        """The configured modality with this AE title, if any."""
        for modality in self.modalities:
            if modality.ae_title == ae_title:
                return modality
        return None


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "dimse": DimseSettings,
    "http": HttpSettings,
    "index": IndexSettings,
    "storage": StorageSettings,
    "ai": AiSettings,
}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a TOML or environment value to the field's declared type."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is Path:
        return Path(str(value))
    if annotation is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    choices = get_args(annotation)
    if choices:
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
        return value
    return value


def _build_section(cls: type[Any], raw: Mapping[str, Any], section: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"[{section}]: unknown key(s) {', '.join(sorted(unknown))}")
    kwargs = {key: _coerce(value, hints[key], f"[{section}] {key}") for key, value in raw.items()}
    return cls(**kwargs)


def _validate_ae_title(title: str, where: str) -> None:
    if not 1 <= len(title.strip()) <= 16 or "\\" in title or not title.isprintable():
        raise ConfigError(f"{where}: AE title must be 1-16 printable characters, got {title!r}")


def _build_modalities(raw: Any) -> tuple[Modality, ...]:
    if not isinstance(raw, list):
        raise ConfigError("[[modalities]] must be an array of tables")
    result = []
    for position, entry in enumerate(raw):
        where = f"[[modalities]] #{position + 1}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: must be a table")
        missing = {"name", "ae_title", "host", "port"} - set(entry)
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
        modality = _build_section(Modality, entry, "modalities")
        _validate_ae_title(modality.ae_title, where)
        result.append(modality)
    names = [m.name for m in result]
    if len(names) != len(set(names)):
        raise ConfigError("[[modalities]]: names must be unique")
    return tuple(result)


def _string_tuple(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _build_ai_routes(raw: Any) -> tuple[AiRoute, ...]:
    """``[[ai.routes]]`` tables: ``model`` and the criteria of the series it reads."""
    if not isinstance(raw, list):
        raise ConfigError("[[ai.routes]] must be an array of tables")
    routes = []
    for position, entry in enumerate(raw):
        where = f"[[ai.routes]] #{position + 1}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("model"), str):
            raise ConfigError(f"{where}: must be a table with a model name")
        unknown = set(entry) - {f.name for f in dataclasses.fields(AiRoute)}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        criteria = {
            key: _string_tuple(value, f"{where} {key}")
            for key, value in entry.items()
            if key != "model"
        }
        routes.append(AiRoute(model=entry["model"], **criteria))
    return tuple(routes)


_RETENTION_KEYS = {"name", "keep_years", "keep_days", "modality", "study_description", "action"}


def _build_retention(raw: Any) -> tuple[RetentionPolicy, ...]:
    """``[[storage.retention]]`` tables: ``name``, ``keep_years`` or ``keep_days``, optional
    ``modality`` and ``study_description`` (pattern), ``action`` = "delete" or "report"."""
    if not isinstance(raw, list):
        raise ConfigError("[[storage.retention]] must be an array of tables")
    policies = []
    for position, entry in enumerate(raw):
        where = f"[[storage.retention]] #{position + 1}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{where}: must be a table with a name")
        unknown = set(entry) - _RETENTION_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if ("keep_years" in entry) == ("keep_days" in entry):
            raise ConfigError(f"{where}: give exactly one of keep_years and keep_days")
        years = _coerce(entry.get("keep_years", 0), float, f"{where} keep_years")
        days = _coerce(entry.get("keep_days", 0), float, f"{where} keep_days")
        keep = years * DAYS_PER_YEAR if "keep_years" in entry else days
        if keep <= 0:
            raise ConfigError(f"{where}: the keep must be positive")
        action = entry.get("action", "report")
        if action not in ("delete", "report"):
            raise ConfigError(f"{where}: action must be delete or report, got {action!r}")
        policies.append(
            RetentionPolicy(
                name=entry["name"],
                keep_days=keep,
                modality=_coerce(entry.get("modality", ""), str, f"{where} modality"),
                study_description=_coerce(
                    entry.get("study_description", ""), str, f"{where} study_description"
                ),
                action=action,
            )
        )
    names = [p.name for p in policies]
    if len(names) != len(set(names)):
        raise ConfigError("[[storage.retention]]: names must be unique")
    return tuple(policies)


def _credential_table(
    raw: Any, where: str, parse: Callable[[str], object]
) -> tuple[tuple[str, str], ...]:
    """``[http.users]`` / ``[http.tokens]``: names to hashes, each hash checked."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table of name = hash")
    entries = []
    for name, value in raw.items():
        if not name or ":" in name or not name.isprintable():
            raise ConfigError(f"{where}: bad name {name!r} (no ':' or control characters)")
        if not isinstance(value, str):
            raise ConfigError(f"{where} {name}: expected a hash string")
        try:
            parse(value)
        except BadHash as exc:
            raise ConfigError(f"{where} {name}: {exc}") from None
        entries.append((str(name), value))
    return tuple(entries)


def _http_extras(values: dict[str, Any]) -> dict[str, Any]:
    """Pop and check the [http] keys that are not scalars: users, tokens, trusted_proxies."""
    extras: dict[str, Any] = {
        "users": _credential_table(values.pop("users", {}), "[http.users]", parse_password_hash),
        "tokens": _credential_table(values.pop("tokens", {}), "[http.tokens]", parse_token_hash),
    }
    proxies = values.pop("trusted_proxies", [])
    if isinstance(proxies, str):  # PACS_HTTP_TRUSTED_PROXIES="10.0.0.1,10.0.0.2"
        proxies = [p.strip() for p in proxies.split(",") if p.strip()]
    proxies = _string_tuple(proxies, "[http] trusted_proxies")
    for address in proxies:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise ConfigError(f"[http] trusted_proxies: not an address: {address!r}") from None
    extras["trusted_proxies"] = proxies
    return extras


_TIER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# '' and the codecs of pacs.core.lossless.CODECS (not imported here: it pulls in the codecs)
_TIER_CODECS = ("", "jpeg-ls", "jpeg2000")


def _build_tiers(raw: Any) -> tuple[TierSettings, ...]:
    """``[[storage.tiers]]`` tables, hottest first."""
    if not isinstance(raw, list):
        raise ConfigError("[[storage.tiers]] must be an array of tables")
    tiers = []
    for position, entry in enumerate(raw):
        where = f"[[storage.tiers]] #{position + 1}"
        if not isinstance(entry, Mapping) or not {"name", "location"} <= set(entry):
            raise ConfigError(f"{where}: must be a table with a name and a location")
        tier = _build_section(TierSettings, entry, "storage.tiers")
        if not _TIER_NAME.match(tier.name) or tier.name == "hot":
            raise ConfigError(
                f"{where}: invalid name {tier.name!r} (letters, digits, - and _; not 'hot')"
            )
        if not tier.location.strip():
            raise ConfigError(f"{where}: location is empty")
        if not 0 <= tier.hot_fill_low <= tier.hot_fill_high <= 100:
            raise ConfigError(f"{where}: expected 0 <= hot_fill_low <= hot_fill_high <= 100")
        if tier.compress not in _TIER_CODECS:
            raise ConfigError(
                f"{where}: compress {tier.compress!r} is not one of "
                + ", ".join(repr(c) for c in _TIER_CODECS)
            )
        tiers.append(tier)
    names = [t.name for t in tiers]
    if len(names) != len(set(names)):
        raise ConfigError("[[storage.tiers]]: names must be unique")
    return tuple(tiers)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``PACS_DIMSE_PORT=4242`` -> ``{"dimse": {"port": "4242"}}``."""
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("PACS_"):
            continue
        rest = name[len("PACS_") :].lower()
        for section in _SECTIONS:
            if rest.startswith(section + "_"):
                overrides.setdefault(section, {})[rest[len(section) + 1 :]] = value
                break
    return overrides


def load_settings(
    config_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (if any), apply ``PACS_*`` overrides, validate, and freeze."""
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            with open(config_file, "rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {config_file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: invalid TOML: {exc}") from None
    unknown = set(raw) - set(_SECTIONS) - {"modalities"}
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(sorted(unknown))}")
    env = _env_overrides(os.environ if environ is None else environ)
    sections: dict[str, Any] = {}
    raw_ai = dict(raw.get("ai", {}))
    routes = _build_ai_routes(raw_ai.pop("routes", []))
    raw["ai"] = raw_ai
    raw_storage = dict(raw.get("storage", {}))
    retention = _build_retention(raw_storage.pop("retention", []))
    tiers = _build_tiers(raw_storage.pop("tiers", []))
    raw["storage"] = raw_storage
    for section, cls in _SECTIONS.items():
        values = dict(raw.get(section, {}))
        values.update(env.get(section, {}))
        extras = _http_extras(values) if section == "http" else {}
        sections[section] = dataclasses.replace(_build_section(cls, values, section), **extras)
    settings = Settings(
        **sections,
        modalities=_build_modalities(raw.get("modalities", [])),
        ai_routes=routes,
        retention=retention,
        tiers=tiers,
    )
    _validate_ae_title(settings.dimse.ae_title, "[dimse] ae_title")
    if settings.dimse.workers < 1:
        raise ConfigError("[dimse] workers must be at least 1")
    if settings.ai.workers < 0 or settings.ai.batch_size < 1 or settings.ai.jobs_per_claim < 1:
        raise ConfigError("[ai] workers must be >= 0, batch_size and jobs_per_claim >= 1")
    return settings


def describe(settings: Settings) -> str:
    """The effective settings as TOML, each key preceded by its description."""
    lines: list[str] = []
    for section, cls in _SECTIONS.items():
        lines.append(f"[{section}]")
        values = getattr(settings, section)
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata.get('doc', '')}")
            value = getattr(values, f.name)
            if f.name in {"users", "tokens"}:  # hashes are not printed
                names = ", ".join(name for name, _ in value) or "none"
                lines.append(f"# {f.name}: {names}")
            elif isinstance(value, tuple):
                lines.append(f"{f.name} = [" + ", ".join(_toml_value(v) for v in value) + "]")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        if section == "index":
            lines.append(f"# effective: {settings.index_url}")
        if section == "storage":
            lines.append(f"# effective: {settings.blob_dir}")
        if section == "ai":
            lines.append(f"# effective: {settings.models_dir}")
        if section == "http":
            lines.append(f"# effective viewer_dir: {settings.viewer_dir}")
        lines.append("")
    for route in settings.ai_routes:
        lines.append("[[ai.routes]]")
        for f in dataclasses.fields(AiRoute):
            value = getattr(route, f.name)
            rendered = (
                "[" + ", ".join(_toml_value(v) for v in value) + "]"
                if isinstance(value, tuple)
                else _toml_value(value)
            )
            lines.append(f"{f.name} = {rendered}")
        lines.append("")
    for policy in settings.retention:
        lines.append(f"# {policy.describe()}")
        lines.append("[[storage.retention]]")
        lines.append(f"name = {_toml_value(policy.name)}")
        lines.append(f"keep_days = {policy.keep_days:g}")
        lines.append(f"modality = {_toml_value(policy.modality)}")
        lines.append(f"study_description = {_toml_value(policy.study_description)}")
        lines.append(f"action = {_toml_value(policy.action)}")
        lines.append("")
    for tier in settings.tiers or (None,):
        lines.append("[[storage.tiers]]" if tier else "# [[storage.tiers]] (none configured)")
        for f in dataclasses.fields(TierSettings):
            lines.append(f"# {f.metadata.get('doc', '')}")
            prefix = "" if tier else "# "
            value = _toml_value(getattr(tier, f.name)) if tier else "..."
            lines.append(f"{prefix}{f.name} = {value}")
        lines.append("")
    for modality in settings.modalities:
        lines.append("[[modalities]]")
        for f in dataclasses.fields(Modality):
            lines.append(f"{f.name} = {_toml_value(getattr(modality, f.name))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
