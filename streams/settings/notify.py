"""``crossings notify``'s settings: where alerts go (Alertmanagers, webhooks) and how hard
it tries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from streams.settings.values import ConfigError, Secret, _float, _int, _secret


@dataclass(frozen=True)
class Receiver:
    """One place ``crossings notify`` delivers alerts to.

    ``target`` (scheme, host and port only) is what logs, metrics and dead letters show:
    webhook URLs often carry a token in their path or query, which must not leak there.
    ``id`` names its consumer group: a hash of the full URL, so each receiver keeps its own
    offset, and a changed URL is a new receiver.
    """

    kind: str  # "alertmanager" | "webhook"
    url: str

    def __repr__(self) -> str:
        return f"Receiver({self.kind!r}, {self.target!r})"

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    @property
    def id(self) -> str:
        return f"{self.kind}-{hashlib.sha256(self.url.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class NotifySettings:
    """``crossings notify``: where alerts go and how hard it tries."""

    alertmanagers: tuple[Receiver, ...] = ()
    webhooks: tuple[Receiver, ...] = ()
    #: HMAC-SHA256 key of the webhook signatures; required when there are webhooks.
    webhook_secret: Secret | None = None
    #: Seconds from a message's first failed attempt after which it is dead-lettered.
    give_up_seconds: float = 3600.0
    #: Seconds between re-posts of the firing episodes to each Alertmanager.
    resend_seconds: float = 60.0
    #: Longest wait between two attempts (exponential backoff from 0.5 s, with jitter).
    retry_max_seconds: float = 60.0
    #: Seconds one HTTP request may take.
    request_timeout_seconds: float = 10.0
    #: Where a receiver with no committed offset starts reading: "latest" or "earliest".
    start: str = "latest"
    #: Alertmanager's generatorURL; may hold {checkpoint}, {direction} and {episode}.
    generator_url: str = "http://127.0.0.1:6066/metrics"
    web_port: int = 6067

    @property
    def receivers(self) -> tuple[Receiver, ...]:
        return self.alertmanagers + self.webhooks


def _urls(env: Mapping[str, str], name: str, kind: str) -> tuple[Receiver, ...]:
    """A comma-separated list of http(s) URLs, each with a host."""
    receivers = []
    for raw in (env.get(name) or "").split(","):
        url = raw.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else "(no host)"
            raise ConfigError(
                f"{name}: {shown} is not an http(s) URL with a host; set it like 'http://host:9093[,...]'"
            )
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ConfigError(f"{name}: the URL for {parts.hostname} has a malformed port") from None
        receivers.append(Receiver(kind, url.rstrip("/") if kind == "alertmanager" else url))
    return tuple(dict.fromkeys(receivers))


def load_notify(env: Mapping[str, str], web_port: int) -> NotifySettings:
    """``crossings notify``'s settings. The webhook secret is required with webhooks and
    refused without them (a secret nobody uses looks like signing that works)."""
    webhooks = _urls(env, "CROSSINGS_WEBHOOK_URLS", "webhook")
    secret = _secret(env, "CROSSINGS_WEBHOOK_SECRET", "the webhook signing secret")
    if webhooks and secret is None:
        raise ConfigError(
            "CROSSINGS_WEBHOOK_URLS needs a signing secret: set CROSSINGS_WEBHOOK_SECRET or "
            "CROSSINGS_WEBHOOK_SECRET_FILE"
        )
    if secret is not None and not webhooks:
        raise ConfigError(
            "CROSSINGS_WEBHOOK_SECRET is set but CROSSINGS_WEBHOOK_URLS is empty; set both or neither"
        )
    start = (env.get("CROSSINGS_NOTIFY_START") or "latest").strip().lower()
    if start not in ("latest", "earliest"):
        raise ConfigError(f"CROSSINGS_NOTIFY_START={start!r} is not latest or earliest")
    generator = env.get("CROSSINGS_NOTIFY_GENERATOR_URL") or f"http://127.0.0.1:{web_port}/metrics"
    if urlsplit(generator).scheme not in ("http", "https"):
        raise ConfigError(f"CROSSINGS_NOTIFY_GENERATOR_URL={generator!r} is not an http(s) URL")
    try:
        generator.format(checkpoint="", direction="", episode="")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(
            f"CROSSINGS_NOTIFY_GENERATOR_URL={generator!r} may only use {{checkpoint}}, {{direction}} "
            "and {episode} as placeholders"
        ) from None
    return NotifySettings(
        alertmanagers=_urls(env, "CROSSINGS_ALERTMANAGER_URLS", "alertmanager"),
        webhooks=webhooks,
        webhook_secret=secret,
        give_up_seconds=_float(env, "CROSSINGS_NOTIFY_GIVE_UP_SECONDS", 3600.0, 1.0, 7 * 86400.0),
        resend_seconds=_float(env, "CROSSINGS_NOTIFY_RESEND_SECONDS", 60.0, 1.0, 3600.0),
        retry_max_seconds=_float(env, "CROSSINGS_NOTIFY_RETRY_MAX_SECONDS", 60.0, 0.5, 3600.0),
        request_timeout_seconds=_float(env, "CROSSINGS_NOTIFY_TIMEOUT_SECONDS", 10.0, 0.5, 300.0),
        start=start,
        generator_url=generator,
        web_port=_int(env, "CROSSINGS_NOTIFY_WEB_PORT", 6067, 1024, 65535),
    )
