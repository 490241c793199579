"""Keep credentials that users put into URLs out of everything the pipeline writes.

``teacher.base_url`` may be ``https://user:token@host/v1`` and
``orchestration.tracking_uri`` ``https://user:pass@mlflow`` or
``postgresql://user:pass@db/mlflow``. The code that connects reads the real
values from ``Params``; everything that is *written* (MLflow params and
lineage, ``outputs/<profile>/params.json`` and through it ``dvc.lock``, logs,
error messages) goes through :func:`public_params` or :func:`redact_url`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from components.config import Params

#: Dotted params keys whose values are URLs that may carry credentials.
URL_KEYS: tuple[tuple[str, str], ...] = (("teacher", "base_url"), ("orchestration", "tracking_uri"))


def redact_url(url: str) -> str:
    """``url`` without user info, query or fragment (where keys sometimes hide), for logs and files.

    A URL with none of those (``sqlite:///path``, a plain host) comes back unchanged.
    """
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None and not parts.query and not parts.fragment:
            return url
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:  # e.g. a port that is not a number: say nothing rather than echo it
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(``url`` without ``user:password@``, (user, password) or None): send credentials as auth, not in the URL.

    Keeping them out of the URL keeps them out of every log line and error
    message that shows the URL (httpx logs each request's URL).
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (parts.username or "", parts.password or "")


def public_params(params: Params) -> dict[str, Any]:
    """``params.model_dump(mode="json")`` with credential-bearing URLs redacted: the form that may be written."""
    data = params.model_dump(mode="json")
    for section, key in URL_KEYS:
        value = (data.get(section) or {}).get(key)
        if isinstance(value, str):
            data[section][key] = redact_url(value)
    return data
