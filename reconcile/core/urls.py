"""A URL's origin (scheme://host[:port]): what is kept of a gateway URL for requests and records.

Never the path, query or user info, which may hold a secret; IPv6 hosts keep their brackets.
One function, so the fetch endpoint and the snapshot manifest name a gateway the same way.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def origin(url: str) -> str:
    """scheme://host[:port] of `url`, "" when it has no scheme or host.

    ValueError when a bracket or the port is malformed; the message is urllib's and may quote
    the URL, so callers replace it with their own.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port
    if not parts.scheme or not host:
        return ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
