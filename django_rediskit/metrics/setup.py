"""Turn the exporters named in ``REDISKIT["METRICS"]`` on (called from ``AppConfig.ready``).

``{"PROMETHEUS": False, "OPENTELEMETRY": False, "PUBLISH": None}``: PUBLISH is the number of
seconds between two publications of this process's totals to Redis for
``rediskit_info --watch`` (None: not published). With everything off no sink is installed and
every hook returns after one boolean read.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_finished, setting_changed

from django_rediskit import conf
from django_rediskit.metrics import events

_installed: list[events.Sink] = []
_prometheus: Any = None
_publisher: Any = None


def settings_section() -> dict[str, Any]:
    section = conf.get_section("METRICS")
    unknown = set(section) - set(conf.DEFAULTS["METRICS"])
    if unknown:
        raise ImproperlyConfigured(f"Unknown REDISKIT['METRICS'] keys: {sorted(unknown)}.")
    for name in ("PROMETHEUS", "OPENTELEMETRY"):
        if not isinstance(section[name], bool):
            raise ImproperlyConfigured(f"REDISKIT['METRICS'][{name!r}] must be True or False.")
    publish = section["PUBLISH"]
    if publish is not None and (
        isinstance(publish, bool) or not isinstance(publish, int | float) or publish <= 0
    ):
        raise ImproperlyConfigured(
            "REDISKIT['METRICS']['PUBLISH'] must be None or a number of seconds > 0."
        )
    return section


def configure() -> None:
    """(Re)install the sinks from settings; idempotent, and re-run when REDISKIT changes."""
    global _prometheus, _publisher
    unconfigure()
    section = settings_section()
    if section["PROMETHEUS"]:
        _require("prometheus_client", "prometheus")
        from django_rediskit.metrics.prometheus import PrometheusSink

        _prometheus = PrometheusSink()
        _install(_prometheus)
        request_finished.connect(_sync_prometheus, dispatch_uid="rediskit-metrics-prometheus")
    if section["OPENTELEMETRY"]:
        _require("opentelemetry.metrics", "otel")
        from django_rediskit.metrics.otel import OpenTelemetrySink

        _install(OpenTelemetrySink())
    if section["PUBLISH"] is not None:
        from django_rediskit.metrics.publish import Publisher, Totals

        totals = Totals()
        _install(totals)
        _publisher = Publisher(totals, float(section["PUBLISH"]), conf.get_setting("CACHE_ALIAS"))
        request_finished.connect(_publish, dispatch_uid="rediskit-metrics-publish")
    if _installed:
        # Only with a sink: a plain receiver costs every async session operation a thread hop.
        _connect_sessions()


def _require(module: str, extra: str) -> None:
    """A missing exporter library is a configuration error named at startup, not at scrape."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ImproperlyConfigured(
            f"REDISKIT['METRICS'] needs {module.split('.')[0]}: "
            f"pip install 'django-rediskit[{extra}]'."
        )


def unconfigure() -> None:
    global _prometheus, _publisher
    for sink in _installed:
        events.remove_sink(sink)
    _installed.clear()
    _prometheus = _publisher = None
    request_finished.disconnect(dispatch_uid="rediskit-metrics-prometheus")
    request_finished.disconnect(dispatch_uid="rediskit-metrics-publish")
    from django_rediskit.sessions import signals

    signals.device_logged_in.disconnect(dispatch_uid="rediskit-metrics-login")
    signals.session_revoked.disconnect(dispatch_uid="rediskit-metrics-revoke")


def _install(sink: events.Sink) -> None:
    _installed.append(sink)
    events.add_sink(sink)


def prometheus_sink() -> Any:
    """The installed :class:`PrometheusSink`, or None."""
    return _prometheus


def publisher() -> Any:
    """The installed :class:`Publisher`, or None."""
    return _publisher


def _sync_prometheus(**_: Any) -> None:
    if _prometheus is not None:
        _prometheus.sync_stats()


def _publish(**_: Any) -> None:
    if _publisher is not None:
        _publisher.maybe_publish()


def _session_created(user: Any = None, **_: Any) -> None:
    events.session_event("created")
    if user is None:
        return
    from django_rediskit.connection.policy import RedisUnavailable, outage_of
    from django_rediskit.sessions.devices import count_devices

    # One more read per login, only while an exporter is on: the registration does not
    # return the count. An outage loses the observation, never the login.
    try:
        count = count_devices(user)
    except Exception as exc:
        if isinstance(exc, RedisUnavailable) or outage_of(exc) is not None:
            return
        raise
    events.session_devices(count)


def _session_revoked(**kwargs: Any) -> None:
    events.session_event("revoked", kwargs.get("device_id"))


def _connect_sessions() -> None:
    # Receivers, not edits to the engine: the signals already fire where sessions change.
    from django_rediskit.sessions import signals

    signals.device_logged_in.connect(_session_created, dispatch_uid="rediskit-metrics-login")
    signals.session_revoked.connect(_session_revoked, dispatch_uid="rediskit-metrics-revoke")


def _settings_changed(*, setting: str, **_: Any) -> None:
    if setting == "REDISKIT":
        configure()


setting_changed.connect(_settings_changed, dispatch_uid="rediskit-metrics-settings")
