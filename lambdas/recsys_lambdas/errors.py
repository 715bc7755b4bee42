"""The API's errors, in Amazon Personalize's wire shape: an HTTP status, the ``X-Amzn-ErrorType``
header that AWS SDKs turn into ``ClientError.response["Error"]["Code"]``, and a JSON ``message``.

Raised anywhere below the handlers; :mod:`recsys_lambdas.api.common` turns them into responses.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


class ApiError(Exception):
    """An error the API answers with its own status and code (never a bare 500)."""

    status = 500
    code = "InternalFailure"

    def __init__(self, message: str, *, headers: Optional[Dict[str, str]] = None,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})  # further body members (e.g. per-event results)

    def body(self) -> Dict[str, Any]:
        """The JSON body: ``message`` plus any extra members."""
        return {"message": self.message, **self.extra}


class InvalidInput(ApiError):
    """The request breaks the schema or a rule (Personalize's InvalidInputException)."""

    status = 400
    code = "InvalidInputException"


class ResourceNotFound(ApiError):
    """An unknown item or named filter (Personalize's ResourceNotFoundException)."""

    status = 404
    code = "ResourceNotFoundException"


class MethodNotAllowed(ApiError):
    status = 405
    code = "MethodNotAllowedException"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PayloadTooLargeException"


class NotImplementedByModel(ApiError):
    """The deployed model cannot answer this operation (e.g. search without a text index)."""

    status = 501
    code = "NotImplementedException"


class ServiceUnavailable(ApiError):
    """A dependency is throttled or down past the retry budget; the client should retry later."""

    status = 503
    code = "ServiceUnavailableException"

    def __init__(self, message: str, *, retry_after_s: int = 1,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message, headers={"Retry-After": str(int(retry_after_s))}, extra=extra)
