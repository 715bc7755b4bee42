"""Records the AWS calls the Lambda code makes in the moto-backed tests.

A ``before-parameter-build`` handler is appended to botocore's built-in handlers, so every client
created afterwards (boto3's default session, the handlers' own ``boto3.session.Session()``
clients, resources) reports each call: service, operation and parameters as the code passed them.
The component is the outermost ``recsys_lambdas`` frame on the Python stack when the call is made
(the test calls a handler, or a pipeline step function, which calls the shared modules); calls
made by the tests themselves (setup, assertions) have no such frame and are not recorded. An
``after-call`` handler adds the error code the service answered (``NoSuchKey``, ``404``...).

Recording is on only while a test under ``tests/lambdas/`` runs (see ``tests/conftest.py``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Dict, List, Optional

from botocore import handlers

PACKAGE = "recsys_lambdas"
# Environment variables that name AWS resources: a recorded name is bound to the variable whose
# value it was when the call was made (the synthesized function sets the same variables).
NAMING_ENV_VARS = ("USERS_TABLE", "ITEMS_TABLE", "BATCH_RECOMMENDATIONS_TABLE", "IDEMPOTENCY_TABLE",
                "EVENTS_DELIVERY_STREAM", "EVENTS_BUCKET", "ENDPOINT_NAME", "SERVING_MODE", "ARTIFACTS_BUCKET",
                "SERVING_STACK_NAME", "SERVING_DEPLOY_ROLE_ARN")


@dataclasses.dataclass
class Call:
    """One AWS API call made by the Lambda code."""

    test: str  # the pytest node id
    module: str  # outermost recsys_lambdas module on the stack, e.g. recsys_lambdas.pipeline.gate
    service: str  # botocore service name: s3, dynamodb, sagemaker-runtime...
    operation: str  # API operation: GetObject, BatchWriteItem...
    params: Dict[str, Any]
    env: Dict[str, str]  # the resource-naming environment variables at call time
    error: Optional[str] = None  # the error code the service answered, if any

    def __str__(self) -> str:
        where = self.module.rpartition(".")[2]
        return f"{where}: {self.service}.{self.operation} ({self.test})"


class Recorder:
    """Collects :class:`Call` objects while :attr:`test` is set."""

    def __init__(self) -> None:
        self.calls: List[Call] = []
        self.test: Optional[str] = None
        self.collected: set = set()  # test files collected in this session (relative paths)

    def _component(self) -> Optional[str]:
        frame = sys._getframe(2)
        outermost = None
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                outermost = name
            frame = frame.f_back
        return outermost

    def before(self, params: Dict[str, Any], model: Any, context: Dict[str, Any],
               **_: Any) -> None:
        """``before-parameter-build`` handler: record the call if Lambda code makes it."""
        if self.test is None:
            return
        module = self._component()
        if module is None:
            return
        call = Call(
            test=self.test,
            module=module,
            service=model.service_model.service_name,
            operation=model.name,
            params=dict(params),
            env={k: v for k, v in os.environ.items() if k in NAMING_ENV_VARS},
        )
        context["iamcheck_call"] = call
        self.calls.append(call)

    def after(self, http_response: Any, parsed: Dict[str, Any], context: Dict[str, Any],
              **_: Any) -> None:
        """``after-call`` handler: note the error code the service answered."""
        call = context.get("iamcheck_call")
        if call is not None and getattr(http_response, "status_code", 200) >= 300:
            call.error = str((parsed or {}).get("Error", {}).get("Code") or http_response.status_code)


RECORDER = Recorder()


def install() -> None:
    """Register the hooks for every botocore session created from now on (idempotent)."""
    for event, handler in (("before-parameter-build", RECORDER.before),
                           ("after-call", RECORDER.after)):
        if (event, handler) not in handlers.BUILTIN_HANDLERS:
            handlers.BUILTIN_HANDLERS.append((event, handler))
