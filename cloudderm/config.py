"""YAML config -> validated settings, with ``${VAR}`` secrets taken from the environment.

Why this shape: switching provider must be a one-word change in a file, and a mistake in that file must be
reported as *where* (file, provider, field) and *what to do*, never as a traceback and never with a secret
value in it. Values are interpolated from the environment before validation; secret fields are
``SecretStr`` in each adapter's settings, and error messages are built from field paths only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudderm.classifier import AdapterSettings
from cloudderm.errors import ConfigError, config_error_from, unset_variable_error

__all__ = [
    "CONFIG_ENV_VAR",
    "Config",
    "Defaults",
    "Policy",
    "find_config",
    "load_config",
    "parse_config",
    "require_env",
]

CONFIG_ENV_VAR = "CLOUDDERM_CONFIG"
DEFAULT_CONFIG_NAME = "cloudderm.yaml"
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Defaults(BaseModel):
    """Settings every provider inherits unless it sets its own."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    concurrency: int = Field(default=8, ge=1)
    requests_per_second: float | None = Field(default=None, gt=0)


class Policy(BaseModel):
    """Governance rules checked before any image is sent (see ``cloudderm.governance.policy``)."""

    model_config = ConfigDict(extra="forbid")

    allowed_regions: list[str] | None = None
    require_hipaa_eligible: bool = False
    intended_use: str | None = None
    forbid_models_prohibited_for: list[str] = Field(default_factory=list)
    allow_general_purpose_models: bool = True
    trusted_model_uris: list[str] | None = None  # glob patterns; models whose loading runs their code
    mode: Literal["enforce", "warn"] = "enforce"


class Config(BaseModel):
    """A whole validated config file."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    version: Literal[1] = 1
    taxonomy: str = "ham10000"
    labels: dict[str, str] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    policy: Policy = Field(default_factory=Policy)
    providers: dict[str, AdapterSettings] = Field(default_factory=dict)
    source: str = "<memory>"

    def select(self, names: Sequence[str] | None = None) -> list[str]:
        """The providers asked for (all of them when none are named), deduplicated, in order.

        Raises:
            ConfigError: a name is not in the config, or the config has no providers at all.
        """
        chosen = list(dict.fromkeys(names)) if names else list(self.providers)
        unknown = [n for n in chosen if n not in self.providers]
        if unknown:
            configured = ", ".join(self.providers) or "none"
            raise ConfigError(
                f"unknown provider(s) {', '.join(unknown)}; configured: {configured}", file=self.source
            )
        if not chosen:
            raise ConfigError("the config names no providers", file=self.source)
        return chosen

    def provider(self, name: str) -> AdapterSettings:
        """Settings for one provider, with the defaults filled in."""
        try:
            settings = self.providers[name]
        except KeyError:
            known = ", ".join(self.providers) or "none"
            raise ConfigError(f"no provider named {name!r}; configured: {known}", file=self.source) from None
        filled = {
            key: getattr(self.defaults, key)
            for key in ("timeout_s", "max_retries", "concurrency", "requests_per_second")
            if getattr(settings, key) is None
        }
        return settings.model_copy(update=filled)


def find_config(explicit: str | os.PathLike | None = None) -> Path:
    """The config to use: ``explicit`` (``-c``), then ``./cloudderm.yaml``, then ``$CLOUDDERM_CONFIG``."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    if local.is_file():
        return local
    env = os.environ.get(CONFIG_ENV_VAR)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"${CONFIG_ENV_VAR} points to {path}, which does not exist")
        return path
    raise ConfigError(
        f"no config given: pass -c FILE, create ./{DEFAULT_CONFIG_NAME}, or set ${CONFIG_ENV_VAR} "
        "(see examples/cloudderm.yaml)"
    )


def read_config_file(found: Path) -> Any:
    """The YAML in ``found``; unreadable, non-UTF-8 or invalid YAML is a ConfigError naming the file (exit 2).

    One reader for every command that opens a config (``load_config``, the app's per-provider loader).
    """
    try:
        return yaml.safe_load(found.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(
            "not UTF-8 text: is it the right file? Save YAML as UTF-8", file=str(found)
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read it: {e.strerror or e}", file=str(found)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}", file=str(found)) from None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Find, read, interpolate and validate a config file."""
    found = find_config(path)
    raw = read_config_file(found)
    return parse_config(raw if raw is not None else {}, source=str(found))


def parse_config(
    data: Mapping[str, Any], *, source: str = "<memory>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a config mapping (already parsed from YAML)."""
    if not isinstance(data, Mapping):
        raise ConfigError("the top level must be a mapping", file=source)
    env = os.environ if env is None else env
    body = {k: v for k, v in data.items() if k != "providers"}
    providers_raw = data.get("providers") or {}
    if not isinstance(providers_raw, Mapping):
        raise ConfigError("'providers' must be a mapping of name -> settings", file=source)
    body = _interpolate(body, env, source, provider=None, path=())
    try:
        config = Config.model_validate({**body, "source": source})
    except ValidationError as e:
        raise config_error_from(e, file=source, all_errors=True) from None
    providers: dict[str, AdapterSettings] = {}
    for name, settings in providers_raw.items():
        providers[str(name)] = _parse_provider(str(name), settings, env, source)
    return config.model_copy(update={"providers": providers})


def _parse_provider(name: str, raw: Any, env: Mapping[str, str], source: str) -> AdapterSettings:
    from cloudderm.registry import resolve_adapter

    if not isinstance(raw, Mapping):
        raise ConfigError("settings must be a mapping", file=source, provider=name)
    if "adapter" not in raw:
        raise ConfigError("missing required field 'adapter'", file=source, provider=name, field="adapter")
    missing: list[tuple[str, str, str]] = []
    templates: list[tuple[tuple[Any, ...], str]] = []
    values = _interpolate(
        dict(raw), env, source, provider=name, path=(), missing=missing, templates=templates
    )
    try:
        cls = resolve_adapter(str(values["adapter"]))
    except ConfigError as e:
        raise ConfigError(str(e), file=source, provider=name) from None
    try:
        settings = cls.Settings.model_validate(values)
    except ValidationError as e:
        if missing:  # the placeholder itself is what failed: say which variable to export
            field, var, _ = missing[0]
            raise unset_variable_error(var, source, name, field) from None
        raise config_error_from(e, file=source, provider=name, all_errors=True) from None
    settings._missing_env = tuple(missing)
    settings._env_templates = tuple(templates)
    return settings


def without_env_values(settings: AdapterSettings) -> AdapterSettings:
    """A copy in which every value the config wrote as ``${VAR}`` is that text again, unvalidated.

    Why: settings pickled for other machines (``compare --engine ray`` keeps actor arguments in the
    cluster's store and sends them over the network) must not carry the secrets this process read from
    its environment. ``with_env_values`` on the other side resolves them from that node's environment.
    """
    templates = (settings.__pydantic_private__ or {}).get("_env_templates", ())
    if not templates:
        return settings
    data = settings.model_dump(mode="python")
    for path, template in templates:
        _set_path(data, path, template)
    copy = type(settings).model_construct(**data)
    copy.__pydantic_private__ = dict(settings.__pydantic_private__ or {})
    return copy


def with_env_values(
    settings: AdapterSettings, provider: str, env: Mapping[str, str] | None = None
) -> AdapterSettings:
    """The settings ``without_env_values`` made, with each ``${VAR}`` resolved from ``env`` (this process's
    environment by default) and validated again; an unset variable is the usual ConfigError naming it."""
    templates = (settings.__pydantic_private__ or {}).get("_env_templates", ())
    if not templates:
        return settings
    env = os.environ if env is None else env
    data = settings.model_dump(mode="python")
    missing: list[tuple[str, str, str]] = []
    for path, template in templates:
        _set_path(
            data,
            path,
            _interpolate(template, env, "<environment>", provider=provider, path=path, missing=missing),
        )
    if missing:
        field, var, _ = missing[0]
        raise unset_variable_error(var, "this machine's environment", provider, field)
    try:
        resolved = type(settings).model_validate(data)
    except ValidationError as e:
        raise config_error_from(e, provider=provider, all_errors=True) from None
    resolved._env_templates = templates
    return resolved


def _set_path(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def require_env(provider: str, settings: AdapterSettings) -> None:
    """Raise the ConfigError naming the unset variable (see ``AdapterSettings.require_env``)."""
    settings.require_env(provider)


def _interpolate(
    value: Any,
    env: Mapping[str, str],
    source: str,
    *,
    provider: str | None,
    path: tuple,
    missing: list[tuple[str, str, str]] | None = None,
    templates: list[tuple[tuple[Any, ...], str]] | None = None,
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``.

    An unset variable is an error at once, unless ``missing`` is given (provider settings): then the
    placeholder stays and ``(field, VAR, file)`` is appended, to be raised by ``require_env`` before a call.
    """
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            var, default = match.group(1), match.group(2)
            if var in env:
                return env[var]
            if default is not None:
                return default
            field = ".".join(str(p) for p in path) or None
            if missing is None:
                raise unset_variable_error(var, source, provider, field)
            missing.append((field or "", var, source))
            return match.group(0)

        resolved = _VAR.sub(substitute, value)
        if templates is not None and resolved != value and "${" in value:
            templates.append((path, value))
        return resolved
    if isinstance(value, Mapping):
        return {
            k: _interpolate(
                v, env, source, provider=provider, path=(*path, k), missing=missing, templates=templates
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(
                v, env, source, provider=provider, path=(*path, i), missing=missing, templates=templates
            )
            for i, v in enumerate(value)
        ]
    return value
