"""A deterministic synthetic catalogue and event log with structure worth learning.

The generator is the embedded default data of the demo and the tests. It produces:

* a catalogue of items with titles, categories, power-law popularity, series (part 1, 2, 3 ...
  of the same title, consumed in order) and release times (new items trend after release);
* users with latent category tastes that drift from session to session;
* sessions with sequential structure: the next item is often the next part of a series or an
  item related to the last one, otherwise one drawn from the user's current taste.

With ``with_funnel`` (``recsys data synth --funnel``) the events become views, carts and
purchases with a known funnel (:func:`funnel`), for the event-type benchmark.

The same ``seed`` and sizes always give byte-identical files.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

CATEGORIES = (
    "Drama", "Comedy", "Action", "Sci-Fi", "Documentary", "Horror", "Romance", "Thriller",
    "Animation", "Music", "Sports", "Travel", "Cooking", "History", "Fantasy", "Crime",
)
ADJECTIVES = (
    "Silent", "Golden", "Hidden", "Broken", "Crimson", "Electric", "Frozen", "Wild", "Last", "Lost",
    "Secret", "Midnight", "Burning", "Distant", "Hollow", "Iron", "Lucky", "Northern", "Quiet",
    "Rising", "Savage", "Shining", "Stolen", "Sudden", "Velvet", "Wandering", "Bitter", "Brave",
    "Cosmic", "Dark", "Endless", "Fallen", "Gentle", "Grand", "Little", "Lonely", "Mighty", "Neon",
    "Painted", "Restless", "Scarlet", "Sacred", "Blue", "Bright", "Cold", "Curious", "Eternal",
)
NOUNS = (
    "River", "Empire", "Garden", "Signal", "Harbor", "Kingdom", "Journey", "Mirror", "Ocean",
    "Planet", "Promise", "Shadow", "Storm", "Summer", "Valley", "Winter", "Voyage", "Canyon",
    "Circus", "City", "Dream", "Engine", "Forest", "Frontier", "Island", "Legend", "Machine",
    "Mountain", "Orchard", "Palace", "Road", "Season", "Station", "Symphony", "Tide", "Tower",
    "Village", "Whisper", "Witness", "Horizon", "Lantern", "Market", "Orbit", "Pilgrim", "Rebel",
)
LANGUAGES = ("en", "fr", "de", "es")
DAY = 86_400.0
START = 1_700_000_000.0  # 2023-11-14, so timestamps look real
N_EPOCHS = 12


def _titles(rng: np.random.Generator, n_series: int) -> List[str]:
    titles: List[str] = []
    seen = set()
    while len(titles) < n_series:
        title = f"The {ADJECTIVES[rng.integers(len(ADJECTIVES))]} {NOUNS[rng.integers(len(NOUNS))]}"
        if title in seen:
            title = f"{title} of {NOUNS[rng.integers(len(NOUNS))]}"
        if title in seen:
            title = f"{title} {len(titles)}"
        seen.add(title)
        titles.append(title)
    return titles


def generate(
    n_users: int = 2000, n_items: int = 1000, n_events: int = 60_000, seed: int = 0,
    days: float = 120.0, language_bias: float = 0.0,
) -> Tuple[List[Tuple[str, str, int, str, str]], List[Tuple[str, str, str]]]:
    """Generate (events, items).

    With ``language_bias`` > 0 every series has a language and every user speaks one
    (drawn from a generator of their own, so the default data is unchanged); a drawn item in
    another language than the user's is rejected with this probability (the attribute that
    matters in the metadata benchmark, docs/ML.md).

    Returns:
        events: ``(user_id, item_id, timestamp, event_type, session_id)`` in time order per user,
            users interleaved by time as a real log would be.
        items: ``(item_id, title, category)``.
    """
    if n_users < 1 or n_items < 2 or n_events < n_users:
        raise ValueError("need n_users >= 1, n_items >= 2 and n_events >= n_users")
    events, items, _, _ = _generate(n_users, n_items, n_events, seed, days, language_bias)
    return events, items


def _generate(n_users: int, n_items: int, n_events: int, seed: int, days: float, language_bias: float
              ) -> Tuple[List[Tuple[str, str, int, str, str]], List[Tuple[str, str, str]], np.ndarray, np.ndarray]:
    """:func:`generate`, plus the per-item and per-user language codes (into :data:`LANGUAGES`)."""
    rng = np.random.default_rng(seed)
    n_cat = min(len(CATEGORIES), max(2, n_items // 40))

    # --- catalogue: series of 1-5 parts, each series in one category ----------------------
    series_of = np.empty(n_items, dtype=np.int64)
    part_of = np.empty(n_items, dtype=np.int64)
    series_len: List[int] = []
    i = 0
    while i < n_items:
        length = int(min(n_items - i, rng.choice([1, 1, 1, 2, 3, 4, 5])))
        series_of[i:i + length] = len(series_len)
        part_of[i:i + length] = np.arange(length)
        series_len.append(length)
        i += length
    n_series = len(series_len)
    cat_weights = rng.dirichlet(np.full(n_cat, 2.0))
    series_cat = rng.choice(n_cat, size=n_series, p=cat_weights)
    category = series_cat[series_of]
    titles = _titles(rng, n_series)
    item_title = [
        titles[series_of[j]] + ("" if part_of[j] == 0 else f" {part_of[j] + 1}") for j in range(n_items)
    ]
    # power-law base popularity; later parts of a series are a little less popular
    base = 1.0 / np.power(rng.permutation(n_items) + 1.0, 0.9) * np.power(0.7, part_of)
    release = np.where(rng.random(n_items) < 0.2, rng.uniform(0.1, 0.9, n_items) * days * DAY, 0.0)
    next_in_series = np.where(
        (part_of + 1 < np.array(series_len)[series_of]), np.arange(n_items) + 1, -1
    )
    # each item has a handful of related items in its category (what "people also watch")
    members = [np.flatnonzero(category == c) for c in range(n_cat)]
    related = np.empty((n_items, 6), dtype=np.int64)
    for j in range(n_items):
        pool = members[category[j]]
        p = base[pool] / base[pool].sum()
        related[j] = rng.choice(pool, size=6, p=p)

    # popularity by epoch: released items only, fresh releases boosted (trending)
    epoch_len = days * DAY / N_EPOCHS
    cum_by_epoch_cat = []
    for e in range(N_EPOCHS):
        t = (e + 0.5) * epoch_len
        age = t - release
        weight = np.where(age < 0, 0.0, base * (1.0 + 8.0 * np.exp(-np.maximum(age, 0) / (7 * DAY)) * (release > 0)))
        per_cat = []
        for c in range(n_cat):
            w = weight[members[c]]
            total = w.sum()
            per_cat.append(np.cumsum(w / total) if total > 0 else None)
        cum_by_epoch_cat.append(per_cat)

    # --- users: activity, tastes, timelines -----------------------------------------------
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = np.maximum(2, np.floor(activity / activity.sum() * n_events)).astype(np.int64)
    shortfall = n_events - counts.sum()
    if shortfall > 0:
        counts += rng.multinomial(shortfall, activity / activity.sum())
    elif shortfall < 0:
        # trim the heaviest users
        for u in np.argsort(-counts)[: -shortfall]:
            counts[u] -= 1
    events: List[Tuple[str, str, int, str, str]] = []
    uniform = rng.random
    lang_rng = np.random.default_rng([seed, 17])
    user_lang = lang_rng.integers(len(LANGUAGES), size=n_users)
    item_lang = lang_rng.integers(len(LANGUAGES), size=n_series)[series_of]
    for u in range(n_users):
        taste = rng.dirichlet(np.full(n_cat, 0.3))
        t = rng.uniform(0.0, 0.5) * days * DAY
        seen: set = set()
        last = -1
        session = 0
        remaining = int(counts[u])
        failures = 0
        while remaining > 0 and failures < 50:
            session += 1
            taste = 0.85 * taste + 0.15 * rng.dirichlet(np.full(n_cat, 0.3))
            session_len = int(min(remaining, 1 + rng.geometric(0.25)))
            for _ in range(session_len):
                epoch = min(N_EPOCHS - 1, int(t // epoch_len))
                item = -1
                for _attempt in range(4):
                    r = uniform()
                    if last >= 0 and r < 0.35 and next_in_series[last] >= 0:
                        cand = int(next_in_series[last])
                    elif last >= 0 and r < 0.6:
                        cand = int(related[last, rng.integers(6)])
                    else:
                        c = int(np.searchsorted(np.cumsum(taste), uniform() * taste.sum()))
                        c = min(c, n_cat - 1)
                        cum = cum_by_epoch_cat[epoch][c]
                        if cum is None:
                            continue
                        cand = int(members[c][min(len(cum) - 1, int(np.searchsorted(cum, uniform())))])
                    if language_bias and item_lang[cand] != user_lang[u] and lang_rng.random() < language_bias:
                        continue
                    if cand not in seen and release[cand] <= t:
                        item = cand
                        break
                if item < 0:
                    failures += 1  # the user has seen most of what is available: stop early
                    if failures >= 50:
                        break
                    continue
                failures = 0
                seen.add(item)
                events.append((f"u{u:05d}", f"i{item:05d}", int(START + t), "click", f"u{u:05d}-s{session}"))
                last = item
                remaining -= 1
                t += rng.uniform(60.0, 900.0)
            t += rng.exponential(2.0 * DAY)
            if uniform() < 0.5:
                last = -1  # a new session often starts afresh
        # if attempts failed repeatedly, the user ends up with fewer events: that's fine
    events.sort(key=lambda e: (e[2], e[0]))
    items = [(f"i{j:05d}", item_title[j], CATEGORIES[category[j]]) for j in range(n_items)]
    return events, items, item_lang, user_lang


FUNNEL_TYPES = ("view", "cart", "purchase")


def funnel(events: List[Tuple[str, str, int, str, str]], items: List[Tuple[str, str, str]], seed: int = 0,
           cart_rate: float = 0.8, purchase_rate: float = 0.6) -> List[Tuple[str, str, int, str, str]]:
    """The generator's events as a purchase funnel with a known structure (deterministic: a
    generator of its own, seeded by ``seed``).

    Every event becomes a ``view``. A view of item ``i`` by user ``u`` is followed 10-120 s later
    by a ``cart`` of ``i`` with probability ``cart_rate * appeal_i * affinity(u, category_i) ** 2``,
    and a cart 30-600 s later by a ``purchase`` with probability ``purchase_rate``. ``appeal_i``
    (Beta(1, 2), mean 1/3) is drawn for each item independently of its popularity;
    ``affinity(u, c)`` is the share of ``u``'s views in category ``c`` over their largest share.
    So every purchase is preceded by a cart and a view of the item, and purchases follow the
    user's main categories and the items' appeal far more than views do.
    """
    rng = np.random.default_rng([seed, 23])
    index = {item: n for n, (item, _, _) in enumerate(items)}
    cats = sorted({c for _, _, c in items})
    cat_of = np.array([cats.index(c) for _, _, c in items], np.int64)
    appeal = rng.beta(1.0, 2.0, size=len(items))
    views: Dict[str, np.ndarray] = {}
    for user, item, _, _, _ in events:
        counts = views.setdefault(user, np.zeros(len(cats)))
        counts[cat_of[index[item]]] += 1
    out: List[Tuple[int, str, int, Tuple[str, str, int, str, str]]] = []
    for n, (user, item, ts, _, session) in enumerate(events):
        out.append((ts, user, 3 * n, (user, item, ts, "view", session)))
        i = index[item]
        counts = views[user]
        affinity = counts[cat_of[i]] / counts.max()
        draw_cart, draw_buy = rng.random(2)
        cart_gap, buy_gap = int(rng.integers(10, 121)), int(rng.integers(30, 601))
        if draw_cart < cart_rate * appeal[i] * affinity ** 2:
            out.append((ts + cart_gap, user, 3 * n + 1, (user, item, ts + cart_gap, "cart", session)))
            if draw_buy < purchase_rate:
                when = ts + cart_gap + buy_gap
                out.append((when, user, 3 * n + 2, (user, item, when, "purchase", session)))
    out.sort(key=lambda e: (e[0], e[1], e[2]))
    return [e[3] for e in out]


def write_dataset(
    out_dir, n_users: int = 2000, n_items: int = 1000, n_events: int = 60_000, seed: int = 0,
    language_bias: float = 0.0, with_funnel: bool = False,
) -> Tuple[Path, Path]:
    """Write ``events.csv`` and ``items.csv`` under ``out_dir``; returns their paths.

    With ``with_funnel`` the events are :func:`funnel`'s views, carts and purchases (``n_events``
    views, then the carts and purchases they lead to).

    With ``language_bias`` > 0 (see :func:`generate`) ``items.csv`` also has ``language`` and
    ``price`` (noise) columns, and ``users.csv`` (``user_id,language,age``; age is noise) is
    written next to them.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if n_users < 1 or n_items < 2 or n_events < n_users:
        raise ValueError("need n_users >= 1, n_items >= 2 and n_events >= n_users")
    events, items, item_lang, user_lang = _generate(n_users, n_items, n_events, seed, 120.0, language_bias)
    if with_funnel:
        events = funnel(events, items, seed)
    events_path, items_path = out / "events.csv", out / "items.csv"
    with open(events_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["user_id", "item_id", "timestamp", "event_type", "session_id"])
        w.writerows(events)
    with open(items_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        if not language_bias:
            w.writerow(["item_id", "title", "category"])
            w.writerows(items)
            return events_path, items_path
        noise = np.random.default_rng([seed, 19])
        w.writerow(["item_id", "title", "category", "language", "price"])
        for (item, title, category), lang in zip(items, item_lang.tolist()):
            w.writerow([item, title, category, LANGUAGES[lang], f"{noise.lognormal(2.5, 1.0):.2f}"])
    with open(out / "users.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["user_id", "language", "age"])
        for u in range(n_users):
            w.writerow([f"u{u:05d}", LANGUAGES[user_lang[u]], int(noise.integers(18, 80))])
    return events_path, items_path
