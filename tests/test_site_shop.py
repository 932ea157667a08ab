"""The example shop as a visitor and an editor see it: fresh pages after every kind of edit,
bad input, Redis down (stopped for real) and concurrent throttled requests.

Each scenario runs in a subprocess under the example project's own settings (its models and
URLs are not part of the test settings), against a private redis-server of the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import RedisServer

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"

PRELUDE = """
import django, json
django.setup()
from django.test import Client
from django.db import transaction
from shop.models import Category, Product, Review
client = Client(HTTP_HOST="localhost")
product = Product.objects.select_related("category").get(name__startswith="Espresso beans")
page = f"/product/{product.pk}/"
def raw_html(url):
    answer = client.get(url)
    assert answer.status_code == 200, (url, answer.status_code, answer.content[:300])
    return answer.content.decode()
def html(url):
    # the view counter under a product page changes on every request: compare the rest
    import re
    return re.sub(r'<p class="views">.*?</p>', "", raw_html(url))
"""

FRESHNESS = """
first = html(page)
assert "Espresso beans 1 kg" in first and ">Coffee<" in first, first[:2000]
assert html(page) == first                          # the second request is the cached fragment
assert "Rendered" in first
api = client.get(f"/api/products/{product.pk}/").json()
assert api["category"]["name"] == "Coffee"

# 1. the product edited (in a transaction, as the admin does): the very next request shows it
with transaction.atomic():
    product.price = "25.50"
    product.save()
assert "25.50" in html(page)

# 2. its category renamed: the product page, the cards and the API all show the new name
coffee = product.category
coffee.name = "Coffee & Espresso"
coffee.save()
after = html(page)
assert "Coffee &amp; Espresso" in after and ">Coffee<" not in after, after[:2000]
listing = html("/shop/")
assert listing.count("Coffee &amp; Espresso") >= 3, listing[:2000]   # pill + every Coffee card
assert html(f"/category/{coffee.pk}/").count("Coffee &amp; Espresso") >= 2
assert client.get(f"/api/products/{product.pk}/").json()["category"]["name"] == "Coffee & Espresso"
assert {p["category"]["name"] for p in client.get("/api/products/").json()} >= {"Coffee & Espresso"}

# 3. a review added: this product's page changes, another product's cached page does not
other = Product.objects.exclude(pk=product.pk).first()
other_page = f"/product/{other.pk}/"
other_before = html(other_page)
Review.objects.create(product=product, author="Reviewer-X", rating=1, text="Too bitter")
assert "Reviewer-X" in html(page)
assert client.get(f"/api/products/{product.pk}/").json()["reviews"][0]["author"] == "Reviewer-X"
assert html(other_page) == other_before             # untouched fragment: same render timestamp

# 4. another product of the same category renamed: the "More in ..." list follows
sibling = Product.objects.filter(category=coffee).exclude(pk=product.pk).first()
sibling.name = "Renamed sibling"
sibling.save()
assert "Renamed sibling" in html(page)

# 5. the product moved to another category
tea = Category.objects.get(name="Tea")
product.category = tea
product.save()
moved = html(page)
assert ">Tea<" in moved and "Coffee &amp; Espresso" not in moved.split("<h2>")[0]

# 6. async view (native aget) sees the same edits
from django.test import AsyncClient
import asyncio
async def fetch():
    answer = await AsyncClient(HTTP_HOST="localhost").get(f"/async/product/{product.pk}/")
    return answer.status_code, answer.content.decode()
status, body = asyncio.run(fetch())
assert status == 200 and "await cache.aget" in body and ">Tea<" in body, body[:500]
tea.name = "Fine Tea"
tea.save()
assert "Fine Tea" in asyncio.run(fetch())[1]

# bad input
assert client.get("/product/999999/").status_code == 404
assert client.get("/product/999999/uncached/").status_code == 404
assert client.get("/api/products/999999/").status_code == 404
missing = asyncio.run(AsyncClient(HTTP_HOST="localhost").get("/async/product/999999/"))
assert missing.status_code == 404
assert client.get("/product/abc/").status_code == 404
assert client.get("/api/search/", {"q": "x" * 5000}).json()["q"] == "x" * 100
print("fresh ok")
"""

WARM = """
html(page); html("/shop/")
print("warm ok")
"""

OUTAGE = """
# Redis is stopped: every page answers from the database, nothing is a 500
for url in (page, "/shop/", f"/category/{product.category_id}/", page + "uncached/"):
    assert "Espresso beans 1 kg" in html(url), url
assert client.get("/api/products/").status_code == 200          # default throttles fail open
limited = client.get("/api/limited/")
assert limited.status_code == 503 and int(limited.headers["Retry-After"]) >= 1, limited.content
# edits still work (their invalidations cannot be sent: the pages are not cached meanwhile)
product.name = "Espresso beans (outage)"
product.save()
assert "Espresso beans (outage)" in html(page)
print("outage ok")
"""

RECOVERED = """
product.refresh_from_db()
assert "Espresso beans (outage)" in html(page)
assert html(page) == html(page)                                   # cached again
assert client.get("/api/limited/").status_code == 200
print("recovered ok")
"""

CONCURRENT = """
import threading
from collections import Counter
codes = Counter()
lock = threading.Lock()
def worker():
    mine = Client(HTTP_HOST="localhost")
    for _ in range(10):
        code = mine.get("/api/limited/").status_code
        with lock:
            codes[code] += 1
threads = [threading.Thread(target=worker) for _ in range(16)]
for thread in threads: thread.start()
for thread in threads: thread.join()
assert codes == {200: 7, 429: 153}, codes
print("concurrent ok")
"""


MESSAGING = """
# page views by write-behind: counted in Redis at once, written to the DB by rediskit_worker
import signal, subprocess, sys, time
from shop.models import ProductViews
for n in range(1, 6):
    assert f"Viewed {n} time" in raw_html(page), n
assert not ProductViews.objects.filter(product=product).exists()   # not yet: the worker does it
worker = subprocess.Popen([sys.executable, "manage.py", "rediskit_worker"])
try:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = ProductViews.objects.filter(product=product).first()
        if row is not None and row.views == 5:
            break
        time.sleep(0.1)
    assert ProductViews.objects.get(product=product).views == 5
    assert "Viewed 6 times" in raw_html(page)                        # Redis keeps counting on
finally:
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)

# "product changed" is published after COMMIT, never on a rollback
from django_rediskit.messaging.pubsub import subscribe
from shop.counters import CHANNEL
subscription = subscribe(CHANNEL)
time.sleep(0.2)
with transaction.atomic():
    product.name = "Rolled back"
    product.save()
    transaction.set_rollback(True)
product.refresh_from_db()
product.name = "Published name"
product.save()
message = None
deadline = time.monotonic() + 10
while message is None and time.monotonic() < deadline:
    message = subscription.get_message(timeout=1.0)
assert message is not None and message.data == {
    "event": "product-changed", "id": product.pk, "name": "Published name"
}, message
assert subscription.get_message(timeout=0.5) is None                # nothing for the rollback
print("messaging ok")
"""


def _env(tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        "DEMO_STATE_DIR": str(tmp_path / "state"),
        "ALLOWED_HOSTS": "localhost,testserver",  # AsyncClient's default host
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(EXAMPLE.parent)]),
        **extra,
    }
    env.pop("SECRET_KEY", None)
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stdout


def _seeded(tmp_path: Path, server: RedisServer, **extra: str) -> dict[str, str]:
    env = _env(tmp_path, server.url, **extra)
    _run(["manage.py", "migrate", "--verbosity", "0"], env)
    _run(["manage.py", "seed_shop"], env)
    return env


def test_every_edit_shows_on_the_next_request(tmp_path: Path, private_redis: RedisServer) -> None:
    env = _seeded(tmp_path, private_redis)
    assert "fresh ok" in _run(["-c", PRELUDE + FRESHNESS], env)


def test_redis_stopped_pages_answer_from_the_database(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    env = _seeded(tmp_path, private_redis)
    assert "warm ok" in _run(["-c", PRELUDE + WARM], env)
    private_redis.stop()
    assert "outage ok" in _run(["-c", PRELUDE + OUTAGE], env)
    private_redis.start()
    assert "recovered ok" in _run(["-c", PRELUDE + RECOVERED], env)


def test_views_are_written_behind_and_saves_publish_an_event(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    env = _seeded(tmp_path, private_redis)
    assert "messaging ok" in _run(["-c", PRELUDE + MESSAGING], env)


def test_concurrent_clients_get_exactly_the_limit(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    env = _seeded(tmp_path, private_redis, SHOP_LIMITED_RATE="7/h")
    assert "concurrent ok" in _run(["-c", PRELUDE + CONCURRENT], env)


def test_seed_refuses_a_negative_review_count(tmp_path: Path, private_redis: RedisServer) -> None:
    env = _env(tmp_path, private_redis.url)
    _run(["manage.py", "migrate", "--verbosity", "0"], env)
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_shop", "--reviews", "-1"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--reviews must be >= 0" in result.stderr


def test_database_url_is_parsed(tmp_path: Path, private_redis: RedisServer) -> None:
    env = _env(tmp_path, private_redis.url, DATABASE_URL="postgres://u:p%40ss@db.example:5433/shop")
    script = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['ENGINE'], d['NAME'], d['USER'], d['PASSWORD'], d['HOST'], d['PORT'])"
    )
    out = _run(["-c", "import django; django.setup(); " + script], env)
    assert out.split() == [
        "django.db.backends.postgresql",
        "shop",
        "u",
        "p@ss",
        "db.example",
        "5433",
    ]
    env["DATABASE_URL"] = "mysql://x/y"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=EXAMPLE, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "unsupported scheme 'mysql'" in result.stderr


README_LINKS = """
import re
readme = open(os.environ["README"]).read()
table = readme[readme.index("### Where to click"):readme.index("Screenshots and the walkthrough")]
paths = sorted(set(re.findall(r"`(/[a-z0-9/?=_.-]*)`", table)))
assert len(paths) >= 5, paths
anonymous = Client(HTTP_HOST="localhost")
for path in paths:
    code = anonymous.get(path).status_code
    assert code in (200, 302), (path, code)           # 302: the devices page asks to sign in
header = anonymous.get("/shop/").content.decode()
for label in ("Shop", "API", "Account", "Devices", "Admin"):
    assert f">{label}</a>" in header, label
print("readme ok", len(paths))
"""


def test_every_path_the_readme_tells_to_click_answers(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    env = _seeded(tmp_path, private_redis, README=str(EXAMPLE.parent / "README.md"))
    assert "readme ok" in _run(["-c", "import os\n" + PRELUDE + README_LINKS], env)
