"""A Redis URL in the task file: redis://, rediss:// or unix://, and never a password (the
section names an environment variable instead). Shared by ``cache:`` and ``coordination:``."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["check_redis_url", "public_url"]


def check_redis_url(url: str | None, backend_example: str) -> None:
    """Raise ``ValueError`` (pydantic turns it into the key's one-line error) when ``url``
    is missing, not a Redis URL, or holds a password."""
    if not url:
        raise ValueError(f"backend 'redis' needs url (e.g. {backend_example})")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"url must be redis://, rediss:// or unix://, not {parts.scheme}:")
    if parts.password:
        raise ValueError(
            "url must not hold a password (secrets never live in the task file): "
            "name an environment variable in password_env"
        )


def public_url(url: str) -> str:
    """The URL without any user, password or query: safe to print."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
