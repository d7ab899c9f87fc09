"""URLs as the library keeps and shows them: never with credentials, links only when they are web links.

Why (issue 12 §6): a manifest URL such as ``https://user:secret@host/photo.jpg`` was stored as the
photo's source and shown to every API client in ``/v1/jobs``, search results and logs; and a
``javascript:`` page URL was rendered as a link in the web page. So every URL that enters the
library (CLI arguments, manifest rows, API manifests) loses its ``user:password@`` part before it is
stored, fetched, logged or shown (a photo behind a password must be downloaded first and indexed as
a file), and a page URL that is not http(s) is not kept at all. The same functions are applied again
where URLs are shown, so rows stored by older versions are shown clean too.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

WEB_SCHEMES = frozenset({"http", "https"})


def strip_credentials(url: str) -> str:
    """``url`` without a ``user[:password]@`` part (unchanged when it has none or does not parse)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def web_link(url: object) -> str | None:
    """``url`` as a link that may be stored and shown: an http(s) URL without credentials, else None."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.netloc.rpartition("@")[2]:
        return None
    return strip_credentials(text)


def shown_url(url: str | None) -> str | None:
    """A stored URL as shown to anyone (API, CLI, web): credentials removed; None stays None."""
    return strip_credentials(url) if url else url
