"""Writes the example Amazon Personalize dataset export in this folder (deterministic).

``python examples/personalize/generate.py [OUT_DIR]`` writes ``interactions.csv``, ``items.csv``
and ``users.csv`` with Personalize's column names: 150 users, 120 items in 6 categories, and
about 3,000 interactions where each view may lead to a cart and a cart to a purchase
(``EVENT_TYPE`` view/cart/purchase; ``EVENT_VALUE`` the price for carts and purchases, empty
for views). Items have numeric (``PRICE``, ``CREATION_TIMESTAMP``) and categorical
(``CATEGORY_L1``, ``BRAND``) metadata and a ``PRODUCT_DESCRIPTION``; users have ``AGE`` and
``MEMBERSHIP``. Users of a membership level prefer two of the categories, so user metadata
carries some signal. Only the standard library is used.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

SEED = 17
N_USERS, N_ITEMS = 150, 120
CATEGORIES = ("shoes", "hats", "bags", "shirts", "socks", "coats")
BASE_PRICE = {"shoes": 80.0, "hats": 25.0, "bags": 60.0, "shirts": 35.0, "socks": 8.0, "coats": 150.0}
BRANDS = ("acme", "northwind", "contoso", "fabrikam", "tailspin", "adatum")
COLOURS = ("red", "blue", "black", "green", "grey", "white")
MEMBERSHIP = ("basic", "silver", "gold")
PREFERRED = {"basic": ("socks", "hats"), "silver": ("shirts", "shoes"), "gold": ("coats", "bags")}
START = 1_700_000_000  # 2023-11-14, Unix seconds
P_CART, P_PURCHASE = 0.3, 0.5


def generate(out_dir: Path) -> list:
    """Write the three files under ``out_dir``; returns their paths."""
    rng = random.Random(SEED)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for n in range(N_ITEMS):
        category = CATEGORIES[n % len(CATEGORIES)]
        brand, colour = rng.choice(BRANDS), rng.choice(COLOURS)
        price = round(BASE_PRICE[category] * rng.uniform(0.6, 1.6), 2)
        items.append({"ITEM_ID": f"item-{n:03d}", "CATEGORY_L1": category, "BRAND": brand,
                      "PRICE": f"{price:.2f}", "CREATION_TIMESTAMP": str(START - rng.randrange(365) * 86_400),
                      "PRODUCT_DESCRIPTION": f"{colour} {category} by {brand}"})
    by_category = {c: [i for i in items if i["CATEGORY_L1"] == c] for c in CATEGORIES}
    users = []
    for n in range(N_USERS):
        users.append({"USER_ID": f"user-{n:03d}", "AGE": str(rng.randint(18, 70)),
                      "MEMBERSHIP": MEMBERSHIP[n % len(MEMBERSHIP)] if n % 10 else ""})  # some missing
    interactions = []
    for user in users:
        liked = PREFERRED.get(user["MEMBERSHIP"]) or tuple(rng.sample(CATEGORIES, 2))
        clock = START + rng.randrange(30 * 86_400)
        for _ in range(rng.randint(8, 22)):  # views
            category = rng.choice(liked) if rng.random() < 0.8 else rng.choice(CATEGORIES)
            item = rng.choice(by_category[category])
            clock += rng.randint(60, 36_000)
            interactions.append((user["USER_ID"], item["ITEM_ID"], clock, "view", ""))
            if rng.random() < P_CART:
                clock += rng.randint(10, 600)
                interactions.append((user["USER_ID"], item["ITEM_ID"], clock, "cart", item["PRICE"]))
                if rng.random() < P_PURCHASE:
                    clock += rng.randint(10, 900)
                    interactions.append((user["USER_ID"], item["ITEM_ID"], clock, "purchase", item["PRICE"]))
    interactions.sort(key=lambda row: (row[2], row[0]))
    paths = [out_dir / "interactions.csv", out_dir / "items.csv", out_dir / "users.csv"]
    with open(paths[0], "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"])
        writer.writerows(interactions)
    for path, rows in ((paths[1], items), (paths[2], users)):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return paths


if __name__ == "__main__":
    for written in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent):
        print(written)
