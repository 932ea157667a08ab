"""``LOCATION`` parsing: the URL scheme picks the topology, the ``BACKEND`` never changes.

- ``redis://[user:pass@]host:port/db``, ``rediss://...``: one server (TLS with ``rediss``)
- ``unix:///path/redis.sock?db=N``: one server over a Unix socket
- ``redis+sentinel://[user:pass@]s1:26379,s2:26379/svc/db``: the primary Sentinel names ``svc``
- ``redis+cluster://[user:pass@]h1:p1,h2:p2/``: a Redis Cluster, seeded by these nodes

``rediss+sentinel://`` and ``rediss+cluster://`` are the TLS variants. Credentials in the URL are
the data nodes' (ACL user and password); sentinels' own credentials go in
``OPTIONS["SENTINEL_KWARGS"]``. The standalone schemes are left to redis-py's ``from_url`` (they
are its format, query options included); the two multi-node schemes are parsed here because their
netloc holds several ``host:port`` pairs, which ``urllib`` refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

Kind = Literal["standalone", "sentinel", "cluster"]

STANDALONE_SCHEMES = frozenset({"redis", "rediss", "unix"})
MULTI_NODE_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
SUPPORTED_SCHEMES = STANDALONE_SCHEMES | frozenset(MULTI_NODE_SCHEMES)


@dataclass(frozen=True)
class Location:
    """What a ``LOCATION`` names; passwords are kept out of ``repr``."""

    kind: Kind
    #: standalone: the URLs as given, primary first (django-redis's replica list)
    urls: tuple[str, ...] = ()
    #: sentinel / cluster: the seed nodes
    nodes: tuple[tuple[str, int], ...] = ()
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: sentinel: the monitored service's name
    service: str | None = None
    db: int = 0
    #: query-string options (``?ssl_cert_reqs=none``...), passed to the connections
    query: tuple[tuple[str, str], ...] = ()


def parse_location(location: str | list[str] | tuple[str, ...]) -> Location:
    """Parse a ``LOCATION`` (a URL, a comma-separated list, or a list of URLs)."""
    if isinstance(location, str):
        text = location.strip()
        if not text:
            raise ImproperlyConfigured("CACHES LOCATION is empty: give a redis:// URL.")
        scheme = urlsplit(text).scheme
        if scheme in MULTI_NODE_SCHEMES:
            return _parse_multi_node(text)
        urls = tuple(part.strip() for part in text.split(",") if part.strip())
    else:
        urls = tuple(str(url).strip() for url in location)
        if not urls:
            raise ImproperlyConfigured("CACHES LOCATION is empty: give a redis:// URL.")
        if len(urls) == 1 and urlsplit(urls[0]).scheme in MULTI_NODE_SCHEMES:
            return _parse_multi_node(urls[0])
    for url in urls:
        validate_standalone_url(url)
    return Location(kind="standalone", urls=urls, tls=urlsplit(urls[0]).scheme == "rediss")


def validate_standalone_url(url: str) -> None:
    """Reject a URL whose scheme redis-py would misread, with a message that says why."""
    scheme = urlsplit(url).scheme
    if scheme in MULTI_NODE_SCHEMES:
        raise ImproperlyConfigured(
            f"{scheme}:// names several nodes and cannot be mixed with other URLs in one LOCATION."
        )
    if scheme not in STANDALONE_SCHEMES:
        raise ImproperlyConfigured(
            f"Unsupported Redis URL scheme {scheme!r} in {redact_url(url)!r}; use one of "
            f"{', '.join(f'{name}://' for name in sorted(SUPPORTED_SCHEMES))}."
        )


def _parse_multi_node(url: str) -> Location:
    scheme, rest = url.split("://", 1)
    kind, tls = MULTI_NODE_SCHEMES[scheme]
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    default_port = 26379 if kind == "sentinel" else 6379
    nodes = tuple(_host_port(part, default_port, url) for part in netloc.split(",") if part)
    if not nodes:
        raise ImproperlyConfigured(f"{redact_url(url)!r} names no {kind} node.")
    parts = [unquote(part) for part in path.split("/") if part]
    service = None
    db = 0
    if kind == "sentinel":
        if not parts:
            raise ImproperlyConfigured(
                f"{redact_url(url)!r}: name the Sentinel service, "
                "redis+sentinel://host:26379,host2:26379/<service>/<db>."
            )
        service, parts = parts[0], parts[1:]
    if parts:
        if len(parts) > 1 or not parts[0].isdigit():
            raise ImproperlyConfigured(f"{redact_url(url)!r}: the database must be a number.")
        db = int(parts[0])
    if kind == "cluster" and db != 0:
        raise ImproperlyConfigured(f"{redact_url(url)!r}: Redis Cluster has database 0 only.")
    return Location(
        kind=kind,
        nodes=nodes,
        tls=tls,
        username=username,
        password=password,
        service=service,
        db=db,
        query=tuple(parse_qsl(query)),
    )


def _host_port(text: str, default_port: int, url: str) -> tuple[str, int]:
    if text.startswith("["):  # [::1]:6379
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host or (port and not port.isdigit()):
        raise ImproperlyConfigured(f"{redact_url(url)!r}: bad node address {text!r}.")
    return host, int(port) if port else default_port


def redact_url(url: str) -> str:
    """The URL with its password replaced, for error messages and the admin."""
    if "://" not in url or "@" not in url.split("://", 1)[1].split("/", 1)[0]:
        return url
    scheme, rest = url.split("://", 1)
    netloc, sep, tail = rest.partition("/")
    userinfo, host = netloc.rsplit("@", 1)
    user, colon, _secret = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}{sep}{tail}"
