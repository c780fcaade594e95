"""Read typed settings from environment variables; a bad value names the variable and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ConfigError(ValueError):
    """A setting with a value that is not allowed."""


class Env:
    """Typed access to a mapping of environment variables (os.environ or a test's dict)."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def str(self, name: str, default: str | None) -> str | None:
        value = self.raw(name)
        return default if value is None else value

    def int(self, name: str, default: int, minimum: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            out = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r}: expected an integer") from None
        if minimum is not None and out < minimum:
            raise ConfigError(f"{name}={value!r}: expected an integer >= {minimum}")
        return out

    def float(
        self, name: str, default: float, minimum: float | None = None, maximum: float | None = None
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            out = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r}: expected a number") from None
        if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
            raise ConfigError(f"{name}={value!r}: expected a number in [{minimum}, {maximum}]")
        return out

    def bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={value!r}: expected 1/0 (or true/false)")

    def choice(self, name: str, default: str, allowed: Sequence[str]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            raise ConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
        return value

    def list(self, name: str, default: Sequence[str]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return tuple(default)
        return tuple(x.strip() for x in value.split(",") if x.strip())
