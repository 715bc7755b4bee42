"""AWS clients, created once per Lambda container (lazily, on first use) and shared by requests.

Each client has explicit connect/read timeouts and a bounded retry policy so that a slow
dependency costs a known, small slice of the Lambda timeout:

- sagemaker-runtime: one attempt; when the endpoint is slow or failing we answer from the batch
  recommendations instead of retrying (``recsys_lambdas.service``).
- dynamodb: one attempt per botocore call; throttling is retried by
  :func:`recsys_lambdas.feature_store.with_backoff` with short, jittered delays, because
  botocore's own backoff (up to seconds) does not fit an API latency budget.
- s3 (DELETE /users/{userId}'s deletion record): one attempt; the client retries the request.
- firehose: one attempt per call; :mod:`recsys_lambdas.events_log` retries failed records and
  failed calls itself, within ``FIREHOSE_BUDGET_S``.

Tests call :func:`reset` to drop the cached clients (e.g. inside ``moto.mock_aws``).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

import boto3
from botocore.config import Config

from recsys_lambdas import settings as settings_mod
from recsys_lambdas.settings import Settings

_lock = threading.Lock()
_clients: Dict[str, Any] = {}
_settings: Optional[Settings] = None


def current_settings() -> Settings:
    """The settings for this container, read from the environment once."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def _config(service: str, cfg: Settings) -> Config:
    if service == "sagemaker-runtime":
        return Config(connect_timeout=settings_mod.ENDPOINT_CONNECT_TIMEOUT_S,
                      read_timeout=cfg.endpoint_timeout_s,
                      retries={"mode": "standard", "total_max_attempts": 1})
    if service == "dynamodb":
        return Config(connect_timeout=settings_mod.DYNAMODB_CONNECT_TIMEOUT_S,
                      read_timeout=settings_mod.DYNAMODB_READ_TIMEOUT_S,
                      retries={"mode": "standard", "total_max_attempts": 1},
                      max_pool_connections=20)
    return Config(connect_timeout=settings_mod.FIREHOSE_CONNECT_TIMEOUT_S,
                  read_timeout=settings_mod.FIREHOSE_READ_TIMEOUT_S,
                  retries={"mode": "standard", "total_max_attempts": 1})


def client(service: str) -> Any:
    """The shared boto3 client for ``service`` (``dynamodb``, ``sagemaker-runtime``, ``firehose``, ``s3``)."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            cfg = current_settings()
            url = cfg.sagemaker_endpoint_url if service == "sagemaker-runtime" else cfg.aws_endpoint_url
            # the local stack points sagemaker-runtime at its own endpoint and the rest at moto
            url = url or cfg.aws_endpoint_url
            _clients[service] = boto3.session.Session().client(
                service, endpoint_url=url, config=_config(service, cfg))
        return _clients[service]


def reset(settings: Optional[Settings] = None) -> None:
    """Forget the cached clients and settings (tests; or a changed environment)."""
    global _settings
    with _lock:
        _clients.clear()
        _settings = settings
