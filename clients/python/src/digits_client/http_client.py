"""A typed client for the gateway's HTTP API (httpx, synchronous and thread-safe)."""

from __future__ import annotations

import mimetypes
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import httpx

from .errors import ProblemError, UnreachableError
from .models import Page, Recognition

DEFAULT_URL = "http://127.0.0.1:8080"


class HttpClient:
    """``with HttpClient(url, token=...) as client: client.recognize(Path("seven.png"))``.

    ``token`` is a bearer token: uploads may go without one, reading anything back needs it.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "digits-client/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise UnreachableError(
                f"{self._http.base_url} did not answer in time ({error.__class__.__name__})"
            ) from error
        except httpx.TransportError as error:
            raise UnreachableError(f"cannot reach {self._http.base_url}: {error}") from error
        if response.is_success:
            return response
        try:
            body = response.json()
        except ValueError:
            body = None
        raise ProblemError.from_http(response.status_code, response.headers, response.text, body)

    def recognize(
        self,
        image: bytes | Path,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
        retries: int = 2,
    ) -> Recognition:
        """Upload one image; the answer is the stored recognition.

        Every upload carries an Idempotency-Key (a fresh UUID unless given), so the retries
        after a 503 or a lost connection store it once at most (see the API's README).
        """
        if isinstance(image, Path):
            filename = filename or image.name
            data = image.read_bytes()
        else:
            data = image
        filename = filename or "image"
        content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        form = {"user": user} if user else None
        for attempt in range(retries + 1):
            try:
                response = self._call(
                    "POST",
                    "/v1/recognitions",
                    files={"image": (filename, data, content_type)},
                    data=form,
                    headers=headers,
                )
                return Recognition.from_json(response.json())
            except (ProblemError, UnreachableError) as error:
                retryable = isinstance(error, UnreachableError) or error.status == 503
                if not retryable or attempt == retries:
                    raise
                time.sleep(_retry_after(error))
        raise AssertionError("unreachable")

    def get(self, recognition_id: str) -> Recognition:
        return Recognition.from_json(self._call("GET", f"/v1/recognitions/{recognition_id}").json())

    def image(self, recognition_id: str) -> bytes:
        return self._call("GET", f"/v1/recognitions/{recognition_id}/image").content

    def delete(self, recognition_id: str) -> None:
        self._call("DELETE", f"/v1/recognitions/{recognition_id}")

    def history(
        self,
        *,
        user: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> Page:
        """One page, newest first: the token's own history, ``user``'s, or (admin) a time window."""
        params = {"user": user, "since": since, "until": until, "limit": limit, "page_token": page_token}
        query = {name: value for name, value in params.items() if value is not None}
        return Page.from_json(self._call("GET", "/v1/recognitions", params=query).json())

    def pages(self, **query: Any) -> Iterator[Page]:
        """Every page of a listing, following ``next_page_token``."""
        token = query.pop("page_token", None)
        while True:
            page = self.history(page_token=token, **query)
            yield page
            token = page.next_page_token
            if not token:
                return

    def label(self, recognition_id: str, digit: int) -> Mapping[str, Any]:
        """Say which digit a recognition really shows (POST /v1/recognitions/{id}/label)."""
        response = self._call("POST", f"/v1/recognitions/{recognition_id}/label", json={"digit": digit})
        return _json_or_empty(response)

    def stats(self) -> Mapping[str, Any]:
        """The service's aggregates (GET /v1/stats), as the server sends them."""
        return _json_or_empty(self._call("GET", "/v1/stats"))

    def create_token(self, user: str) -> Mapping[str, Any]:
        """Issue a user token (admin only): ``{"token": "dgt_…", "id": …, "user": …}``."""
        return _json_or_empty(self._call("POST", "/v1/tokens", json={"user": user}))

    def revoke_token(self, token_id: str) -> None:
        self._call("DELETE", f"/v1/tokens/{token_id}")


def _json_or_empty(response: httpx.Response) -> Mapping[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    body = response.json()
    return body if isinstance(body, Mapping) else {"value": body}


def _retry_after(error: Exception) -> float:
    """Retry-After when the gateway sent one (every 503 has it), else a second; at most 5 s."""
    seconds = error.retry_after if isinstance(error, ProblemError) and error.retry_after is not None else 1.0
    return min(max(seconds, 0.1), 5.0)
