"""The guided tour of ``make demo``: a few real requests against the running stack, their
answers, and the curl commands to try next."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from recsys_tools.local.stack import LocalStack


def call(base_url: str, method: str, path: str, body: Optional[dict[str, Any]] = None,
         timeout: float = 30.0) -> tuple[int, Any]:
    """One request to the API; returns (status, decoded JSON or text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method,  # noqa: S310 - loopback http
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - loopback
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def curl(base_url: str, method: str, path: str, body: Optional[dict[str, Any]] = None) -> str:
    """The curl command for a request (what the reader copies)."""
    if body is None:
        return f"curl -s '{base_url}{path}'"
    return (f"curl -s -X {method} '{base_url}{path}' -H 'Content-Type: application/json' "
            f"-d '{json.dumps(body)}'")


def _item_list(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, dict):
        return []
    for key in ("itemList", "personalizedRanking", "items"):
        if isinstance(answer.get(key), list):
            return [x for x in answer[key] if isinstance(x, dict)]
    return []


class Tour:
    """Prints requests and answers with item titles from the stack's catalogue."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.base = stack.gateway_url
        self.items = stack.items_by_id

    def title(self, item_id: str) -> str:
        info = self.items.get(item_id) or {}
        title, category = info.get("title"), info.get("category")
        if title and category:
            return f"{title} ({category})"
        return str(title or "")

    def show(self, heading: str, method: str, path: str,
             body: Optional[dict[str, Any]] = None, limit: int = 5) -> tuple[int, Any]:
        say = self.stack.say
        say(f"\n--- {heading}")
        say(f"$ {curl(self.base, method, path, body)}")
        started = time.monotonic()
        status, answer = call(self.base, method, path, body)
        elapsed = (time.monotonic() - started) * 1000
        items = _item_list(answer)
        if items:
            extras = {k: answer[k] for k in ("modelVersion", "degraded") if k in answer}
            say(f"HTTP {status} in {elapsed:.0f} ms {json.dumps(extras) if extras else ''}".rstrip())
            for rank, entry in enumerate(items[:limit], 1):
                item_id = str(entry.get("itemId"))
                score = entry.get("score")
                shown = f"{score:.3f}" if isinstance(score, (int, float)) else "-"
                say(f"  {rank}. {item_id:<10} {shown:>7}  {self.title(item_id)}")
            if len(items) > limit:
                say(f"  ... {len(items) - limit} more")
        else:
            text = json.dumps(answer) if not isinstance(answer, str) else answer
            say(f"HTTP {status} in {elapsed:.0f} ms: {text[:400]}")
        return status, answer


def _tour_user(stack: LocalStack) -> tuple[Optional[str], list[str]]:
    for user_id, history in stack.sample_users:
        if len(history) >= 3:
            return user_id, history
    return (stack.sample_users[0] if stack.sample_users else (None, []))


def run_tour(stack: LocalStack) -> None:
    """Walk through recommendations, similar items, search and an event that changes the answer."""
    tour = Tour(stack)
    say = stack.say
    say("\n================ guided tour: real requests against the local stack ================")
    user_id, history = _tour_user(stack)
    if user_id is None:
        user_id, history = "demo-user", []
    if history:
        say(f"\nUser {user_id} has watched {len(history)} items; the latest: "
            + "; ".join(tour.title(i) or i for i in history[-3:]))
    body = {"userId": user_id, "numResults": 5}
    _, before = tour.show(f"recommendations for user {user_id} (POST /recommendations)",
                          "POST", "/recommendations", body)
    anchor = history[-1] if history else next(iter(stack.items_by_id), "i00000")
    tour.show(f"items similar to {anchor}: {tour.title(anchor)} (GET /items/{{itemId}}/similar)",
              "GET", f"/items/{anchor}/similar?numResults=5")
    title_words = [w for w in tour.title(anchor).split() if w.isalpha() and w.lower() != "the"]
    query = title_words[0].lower() if title_words else "river"
    tour.show(f"search for '{query}', personalised for {user_id} (GET /search)",
              "GET", f"/search?q={query}&userId={user_id}&numResults=5")

    # An event stream in a category the user has not shown interest in changes the next answer.
    seen_categories = {(stack.items_by_id.get(i) or {}).get("category") for i in history}
    fresh = [i for i, info in stack.items_by_id.items() if info.get("category") not in seen_categories]
    clicked = (fresh or list(stack.items_by_id))[:3]
    now = int(time.time())
    event_body = {
        "trackingId": "local-demo",
        "userId": user_id,
        "sessionId": f"demo-{uuid.uuid4().hex[:8]}",
        "eventList": [{"eventId": uuid.uuid4().hex, "eventType": "click", "itemId": item,
                       "sentAt": now + n} for n, item in enumerate(clicked)],
    }
    say("\n--- the user now clicks: " + "; ".join(tour.title(i) or i for i in clicked))
    tour.show("POST /events", "POST", "/events", event_body)
    _, after = tour.show(f"recommendations for {user_id} again: the answer follows the clicks",
                         "POST", "/recommendations", body)
    old = [e.get("itemId") for e in _item_list(before)]
    new = [e.get("itemId") for e in _item_list(after)]
    if old and new:
        changed = sum(1 for i in new if i not in old)
        say(f"\n{changed} of {len(new)} recommendations changed after the events.")
    tour.show("the health of every part, the local stack's own included (GET /health)",
              "GET", "/health")
    print_try_it(stack, user_id=user_id, item_id=anchor)


def print_try_it(stack: LocalStack, user_id: Optional[str] = None,
                 item_id: Optional[str] = None) -> None:
    """The curl commands to try, with a real user and item of the loaded data."""
    if user_id is None:
        user_id = _tour_user(stack)[0] or "u00001"
    if item_id is None:
        item_id = next(iter(stack.items_by_id), "i00001")
    base = stack.gateway_url
    say = stack.say
    say("\nTry it:")
    for line in (
        curl(base, "POST", "/recommendations", {"userId": user_id, "numResults": 10}),
        curl(base, "POST", "/recommendations", {"itemId": item_id, "numResults": 10}),
        curl(base, "POST", "/personalize-ranking",
             {"userId": user_id, "inputList": list(stack.items_by_id)[:5] or [item_id]}),
        curl(base, "GET", f"/items/{item_id}/similar?numResults=10"),
        curl(base, "GET", f"/search?q=river&userId={user_id}&numResults=10"),
        curl(base, "POST", "/events", {"trackingId": "t", "userId": user_id, "sessionId": "s1",
                                       "eventList": [{"eventType": "click", "itemId": item_id,
                                                      "sentAt": int(time.time())}]}),
        curl(base, "GET", "/health"),
        curl(base, "GET", "/openapi.json"),
    ):
        say(f"  {line}")
    say(f"\nThe SageMaker endpoint directly: curl -s -X POST {stack.endpoint_url}/invocations "
        f"-H 'Content-Type: application/json' -d '{{\"action\": \"popular\", \"k\": 3}}'")
