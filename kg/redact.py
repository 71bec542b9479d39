"""Secrets out of what the service shows: a URL with its password replaced by ``***``.

``health``, ``kg status`` and error messages name the Redis and graph servers by URL, and a
``KG_REDIS_URL`` may carry a password (``redis://:secret@host:6379/0``, or ``?password=`` in the
query). Whatever is shown goes through :func:`redact_url` first; the URL itself is still used
as given to connect.

>>> redact_url("redis://:s3cret@127.0.0.1:6379/0")
'redis://:***@127.0.0.1:6379/0'
>>> redact_url("redis://kg:s3cret@host/1?password=other&socket_timeout=2")
'redis://kg:***@host/1?password=***&socket_timeout=2'
>>> redact_url("unix:///run/redis.sock?db=0&password=s3cret")
'unix:///run/redis.sock?db=0&password=***'
>>> redact_url("bolt://127.0.0.1:7687")
'bolt://127.0.0.1:7687'
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["MASK", "redact_url"]

MASK = "***"
_SECRET_PARAMS = {"password", "pass", "pwd", "secret", "token", "auth"}


def redact_url(url: str | None) -> str | None:
    """``url`` with any password (in the user info or a query parameter) replaced by ``***``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:{MASK}@{host}"
            elif userinfo:  # redis://secret@host: a lone user info is the password
                netloc = f"{MASK}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
                query = urlencode([(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs],
                                  safe="*")
        if netloc == parts.netloc and query == parts.query:
            return url
        head = f"{parts.scheme}://{netloc}" if url[len(parts.scheme) + 1:].startswith("//") else f"{parts.scheme}:"
        return head + parts.path + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    except ValueError:  # not parseable as a URL: show nothing of it
        return MASK
