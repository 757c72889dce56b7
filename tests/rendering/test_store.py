"""Stored renders cannot be inflated: ineffective parameters and identical bytes add no object,
each account has a ceiling with least-recently-used eviction, and a source's objects go with it."""

import io

import numpy as np
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from PIL import Image
from rest_framework.test import APIClient

from accounts.models import Account
from accounts.services import api_key_create
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from rendering.models import Render
from tests.factories import AccountFactory, SourceFactory

pytestmark = pytest.mark.django_db

BASE = "/render/acme-photos/astronaut.jpg?"


def pixels(response) -> np.ndarray:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def stored(media, folder="renders") -> set[str]:
    root = media / folder
    return {str(p.relative_to(media)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def get_ok(client, query, source="acme-photos", path="astronaut.jpg"):
    response = client.get(f"/render/{source}/{path}?{query}")
    assert response.status_code == 200, response.content
    return response


def purge_all(source):
    from rendering.store import render_purge

    render_purge(source=source)


# Each group: URLs that differ only in parameters that change nothing, the first the plain form.
SAME_EFFECT = [
    pytest.param([
        "w=120&h=80&fit=crop&fm=png",
        "fit=crop&h=80&w=120&fm=png&ixlib=python-4.0",  # Order, unknown names.
        "w=120&h=80&fit=crop&fm=png&fp-x=0.1&fp-y=0.9&fp-z=3",  # A focal point without crop=focalpoint.
        "w=120&h=80&fit=crop&fm=png&mark-align=top,left&mark-alpha=40&mark-pad=30&mark-w=20&mark-rot=45",  # No mark.
        "w=120&h=80&fit=crop&fm=png&q=20&lossless=true",  # PNG has neither quality nor a lossless switch.
        "w=120&h=80&fit=crop&fm=png&fill=solid&fill-color=ff0000",  # No fill with fit=crop.
        "w=120&h=80&fit=crop&fm=png&ar=16:9&min-w=1&dpr=1",  # ar with both sides given; defaults.
        "w=120&h=80&fit=crop&fm=png&bg=00ff0000",  # A transparent bg.
    ], id="crop-box"),
    pytest.param([
        "fm=png",
        "fm=png&dpr=3",  # dpr without a size.
        "fm=png&fit=crop&crop=top,left&max-w=50",  # A fit with no box to work in.
        "fm=png&fit=fill&fill=blur&fill-color=00ff00",
        "fm=png&fit=clip&mark-alpha=100&q=75",
    ], id="no-size"),
    pytest.param([
        "w=200&fm=jpg",
        "w=200&fm=jpg&q=75",  # The default quality spelled out.
        "w=200&fm=jpeg&lossless=1",  # An alias; no lossless JPEG.
        "w=200&fm=jpg&crop=left&fit=clip",
    ], id="jpeg-quality"),
    pytest.param([
        "w=160&h=100&fit=crop&crop=top,left&fm=png",
        "w=160&h=100&fit=crop&crop=left,top,right&fm=png",  # The first side of each axis counts.
    ], id="crop-sides"),
    pytest.param([
        "w=300&fm=png&mark=chelsea.png&mark-w=60&mark-x=10&mark-y=12",
        "w=300&fm=png&mark=/chelsea.png&mark-w=60&mark-x=10&mark-y=12&mark-align=top,center&mark-pad=50",
        "w=300&fm=png&mark=chelsea.png?v=1&mark-w=60&mark-x=10&mark-y=12&mark-scale=90&mark-alpha=100",
    ], id="mark-position"),
    pytest.param([
        "w=300&fm=webp&lossless=true",
        "w=300&fm=webp&lossless=true&q=10",  # Lossless WebP has no quality.
    ], id="webp-lossless"),
]


@pytest.mark.parametrize("a, b, fmt, same", [
    ("w=100&q=20", "w=100", "png", True),
    ("w=100&q=20", "w=100", "", False),  # The origin's format may be JPEG: q counts.
    ("w=100&q=75", "w=100", "", True),  # The default quality spelled out.
    ("w=100&q=45", "w=100&auto=compress", "jpg", True),  # auto=compress's default, with the format known.
    ("w=100&auto=compress", "w=100", "", False),  # It also picks the format.
    ("w=100&lossless=true", "w=100", "avif", True),
    ("w=100&lossless=true", "w=100", "webp", False),
    ("w=100&lossless=true&q=5", "w=100&lossless=true", "webp", True),
    ("bg-remove=true&q=5&lossless=1", "bg-remove=true", "", True),  # A cutout is PNG by default.
    ("w=100&rect=0,0,50,50&mark=x.png&fit=crop", "", "json", True),  # JSON describes the source only.
    ("bg-remove=1&w=100", "bg-remove=1", "json", True),
    ("bg-remove=1", "", "json", False),
    ("ar=16:9&fit=crop", "ar=32:18&fit=crop", "png", True),
    ("ar=16:9&fit=crop&w=10&h=10", "fit=crop&w=10&h=10", "png", True),
    ("ar=16:9&fit=crop&w=10", "fit=crop&w=10", "png", False),
    ("rect=0.0,0.0,10,10", "rect=0,0,10,10", "png", True),
    ("mark=m.png&mark-align=left,top", "mark=m.png&mark-align=top,left", "png", True),
    ("mark=m.png&mark-align=center,middle&mark-pad=40", "mark=m.png&mark-align=center,middle", "png", True),
    ("mark=m.png&mark-align=left&mark-pad=40", "mark=m.png&mark-align=left", "png", False),
    ("mark=m.png&mark-tile=grid&mark-x=3&mark-y=3&mark-pad=40", "mark=m.png&mark-tile=grid&mark-x=3&mark-y=3", "png",
     False),  # The grid's gap is the pad.
    ("mark=m.png&mark-w=20&mark-scale=50&mark-fit=crop", "mark=m.png&mark-w=20&mark-fit=crop", "png", True),
    ("mark=m.png&mark-fit=crop", "mark=m.png", "png", True),  # mark-fit only fits mark-w/mark-h.
    ("mark=https://x.example/m.png?a=1", "mark=https://x.example/m.png", "png", False),  # A URL is as given.
    ("w=10&h=10&fit=fill&fill=solid", "w=10&h=10&fit=fill", "png", True),
    ("w=10&h=10&fit=fill&fill-color=0fff", "w=10&h=10&fit=fill", "png", True),  # The default fill colour.
    ("w=10&h=10&fit=fill&fill=blur&fill-color=f00", "w=10&h=10&fit=fill&fill=blur", "png", True),
    ("w=10&h=10&fit=crop&crop=focalpoint&fp-x=0.2", "w=10&h=10&fit=crop&crop=focalpoint", "png", False),
    ("w=10&h=10&fit=crop&crop=entropy,focalpoint&fp-x=0.2", "w=10&h=10&fit=crop&crop=entropy", "png", True),
    ("w=10&dpr=2", "w=10", "png", False),
])
def test_canonical_form_follows_the_effective_operation(a, b, fmt, same):
    from rendering.params import params_parse

    assert (params_parse(a).canonical(fmt) == params_parse(b).canonical(fmt)) is same


@pytest.mark.parametrize("queries", SAME_EFFECT)
def test_ineffective_parameters_make_one_render_and_one_object(client, source, media_storage, queries):
    # Each URL rendered on its own (the cache purged in between) gives the very same pixels...
    expected = None
    for query in queries:
        purge_all(source)
        image = pixels(get_ok(client, query))
        if expected is None:
            expected = image
        assert image.shape == expected.shape and np.array_equal(image, expected), query
    # ... so all of them are one stored render: one row, one object, one ETag.
    purge_all(source)
    etags = {get_ok(client, query)["ETag"] for query in queries}
    assert len(etags) == 1
    assert Render.objects.count() == 1 and len(stored(media_storage)) == 1


@pytest.mark.parametrize("queries", [
    ["w=120&h=80&fit=crop&fm=png", "w=120&h=80&fit=crop&crop=focalpoint&fp-y=0.1&fm=png"],
    ["w=120&fm=png", "w=120&dpr=2&fm=png"],
    ["w=200&fm=jpg", "w=200&fm=jpg&q=30"],
    ["w=200&fm=webp", "w=200&fm=webp&lossless=true"],
    ["w=160&h=100&fit=crop&crop=top&fm=png", "w=160&h=100&fit=crop&crop=bottom&fm=png"],
    ["w=300&fm=png&mark=chelsea.png&mark-w=60", "w=300&fm=png&mark=chelsea.png&mark-w=60&mark-align=top,left"],
    ["w=120&h=60&fit=fill&fm=png", "w=120&h=60&fit=fill&fill-color=ff0000&fm=png"],
])
def test_parameters_that_change_the_image_make_their_own_render(client, source, media_storage, queries):
    images = [pixels(get_ok(client, query)) for query in queries]
    assert images[0].shape != images[1].shape or not np.array_equal(images[0], images[1])
    assert Render.objects.count() == 2 and len(stored(media_storage)) == 2


def test_identical_bytes_of_one_image_share_one_object(client, source, media_storage):
    # The origin is a JPEG: no fm and fm=jpg are two URLs (two keys) with the same bytes.
    first, second = get_ok(client, "w=90"), get_ok(client, "w=90&fm=jpg")
    assert first.content == second.content and first["ETag"] == second["ETag"]
    rows = list(Render.objects.order_by("id"))
    assert len(rows) == 2 and rows[0].storage_name == rows[1].storage_name
    assert stored(media_storage) == {rows[0].storage_name}
    # A purge of the image removes the rows and, once nothing refers to it, the object.
    from rendering.store import render_purge

    result = render_purge(source=source, path="astronaut.jpg")
    assert (result.renders, result.files) == (2, 1) and stored(media_storage) == set()


class TestCeiling:
    @pytest.fixture(autouse=True)
    def _settings(self, settings):
        settings.RENDER_LAST_USED_SECONDS = 0  # Every lookup records its use (the tests' lookups are not kept).
        settings.RENDER_MAX_STORED_BYTES_PER_ACCOUNT = 0

    def test_least_recently_used_go_first_and_their_objects_disappear(self, client, source, media_storage, settings):
        settings.RENDER_MAX_STORED_PER_ACCOUNT = 3
        names = {}
        for w in (10, 20, 30):
            get_ok(client, f"w={w}&fm=png")
            names[w] = Render.objects.latest("id").storage_name
        get_ok(client, "w=10&fm=png")  # A hit: w=10 is now the most recently used.
        get_ok(client, "w=40&fm=png")  # Over the ceiling: the least recently used (w=20) goes.
        kept = set(Render.objects.values_list("storage_name", flat=True))
        assert len(kept) == 3 and names[20] not in kept and {names[10], names[30]} <= kept
        assert names[20] not in stored(media_storage) and stored(media_storage) == kept
        # w=20 asked again is rendered again; now w=30 is the oldest.
        get_ok(client, "w=20&fm=png")
        assert Render.objects.count() == 3 and names[30] not in stored(media_storage)
        assert names[10] in stored(media_storage)

    def test_a_lowered_ceiling_is_reached_a_batch_per_new_render(self, client, source, media_storage, settings,
                                                                  monkeypatch):
        monkeypatch.setattr("rendering.store.EVICT_BATCH", 2)
        settings.RENDER_MAX_STORED_PER_ACCOUNT = 0
        for w in range(10, 16):
            get_ok(client, f"w={w}&fm=png")
        settings.RENDER_MAX_STORED_PER_ACCOUNT = 2
        counts = []
        for w in range(20, 24):
            get_ok(client, f"w={w}&fm=png")
            counts.append(Render.objects.count())
        assert counts == [5, 4, 3, 2]  # 7 → 5 → 4 → 3 → 2: at most two evicted per request.
        widths = sorted(Image.open(media_storage / name).width for name in stored(media_storage))
        assert widths == [22, 23]  # The two most recently used.

    def test_each_account_has_its_own_ceiling(self, client, source, media_storage, settings):
        settings.RENDER_MAX_STORED_PER_ACCOUNT = 2
        other = SourceFactory(account=AccountFactory(slug="other"), slug="other-photos")
        for w in (10, 20):
            get_ok(client, f"w={w}&fm=png", source="other-photos")
        for w in (10, 20, 30, 40):
            get_ok(client, f"w={w}&fm=png")
        assert Render.objects.filter(source=source).count() == 2
        assert Render.objects.filter(source=other).count() == 2

    def test_a_byte_ceiling(self, client, source, media_storage, settings):
        settings.RENDER_MAX_STORED_PER_ACCOUNT = 0
        sizes = {}
        for w in (100, 110):
            get_ok(client, f"w={w}&fm=png")
            sizes[w] = Render.objects.latest("id").size
        # Room for two of these renders, not three.
        settings.RENDER_MAX_STORED_BYTES_PER_ACCOUNT = sizes[100] + sizes[110] + sizes[110] // 2
        get_ok(client, "w=120&fm=png")
        assert set(Render.objects.values_list("path", flat=True)) == {"astronaut.jpg"}
        widths = sorted(Image.open(media_storage / r.storage_name).width for r in Render.objects.all())
        assert widths == [110, 120]  # w=100, the oldest, is gone; the account is under its bytes.
        assert sum(Render.objects.values_list("size", flat=True)) <= settings.RENDER_MAX_STORED_BYTES_PER_ACCOUNT
        assert len(stored(media_storage)) == 2

    def test_eviction_spares_cutouts_and_objects_other_renders_use(self, client, source, media_storage, settings):
        settings.RENDER_MAX_STORED_PER_ACCOUNT = 2
        bg_remove_job_process(job_id=client.get(BASE + "bg-remove=true").json()["job"])
        cutout = BgRemoveJob.objects.get().cutout_name
        get_ok(client, "bg-remove=true")
        assert Render.objects.get().storage_name == cutout  # This render is the cutout itself.
        get_ok(client, "w=90")
        get_ok(client, "w=90&fm=jpg")  # The same bytes as w=90: two renders, one object.
        shared = Render.objects.latest("id").storage_name
        # Three renders, ceiling two: the cutout's render goes, the cutout and its job stay.
        assert not Render.objects.filter(storage_name=cutout).exists()
        assert (media_storage / cutout).is_file() and BgRemoveJob.objects.get().status == "done"
        # Served again from the same cutout, without a new inference; now w=90 is the oldest and
        # goes, but its object stays: w=90&fm=jpg still uses it.
        assert get_ok(client, "bg-remove=true")["Content-Type"] == "image/png"
        assert BgRemoveJob.objects.get().inferences == 1
        assert list(Render.objects.values_list("storage_name", flat=True).order_by("id")) == [shared, cutout]
        assert (media_storage / shared).is_file()
        assert pixels(get_ok(client, "w=90&fm=jpg")).shape[1] == 90  # A hit: the most recently used.
        get_ok(client, "w=91")  # Evicts the cutout's render.
        assert (media_storage / shared).is_file() and (media_storage / cutout).is_file()
        get_ok(client, "w=92")  # Evicts w=90&fm=jpg, the last render using the shared object.
        assert not (media_storage / shared).exists() and (media_storage / cutout).is_file()
        assert stored(media_storage) == set(Render.objects.values_list("storage_name", flat=True))

    def test_a_cached_hit_writes_nothing(self, client, source, settings):
        from rendering.store import render_lookup_cache_clear

        settings.RENDER_LAST_USED_SECONDS = 600
        settings.RENDER_LOOKUP_CACHE_SECONDS = 60
        settings.RENDER_MAX_STORED_PER_ACCOUNT = 3
        render_lookup_cache_clear()
        get_ok(client, "w=50&fm=png")
        used = Render.objects.get().last_used_at
        with CaptureQueriesContext(connection) as queries:
            for _ in range(20):
                get_ok(client, "w=50&fm=png")
        writes = [q["sql"] for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]
        assert writes == [] and Render.objects.get().last_used_at == used
        # Once the mark is older than RENDER_LAST_USED_SECONDS, a refill records the use, once.
        settings.RENDER_LAST_USED_SECONDS = 0
        render_lookup_cache_clear()
        get_ok(client, "w=50&fm=png")
        assert Render.objects.get().last_used_at > used


class TestMarks:
    def test_marks_live_under_their_source_and_go_with_its_purge(self, client, source, media_storage):
        get_ok(client, "w=200&mark=chelsea.png&mark-w=40")
        marks = stored(media_storage, "marks")
        assert len(marks) == 1 and next(iter(marks)).startswith(f"marks/{source.id}/")
        from rendering.store import render_purge

        # A purge of another image leaves it; a purge of the mark's own path removes it.
        render_purge(source=source, path="astronaut.jpg")
        assert stored(media_storage, "marks") == marks
        assert render_purge(source=source, path="chelsea.png").files == 1
        assert stored(media_storage, "marks") == set()
        get_ok(client, "w=200&mark=chelsea.png&mark-w=40")
        assert len(stored(media_storage, "marks")) == 1
        whole = render_purge(source=source)
        assert whole.files == 2 and stored(media_storage, "marks") == set() and stored(media_storage) == set()

    def test_an_absolute_mark_url_is_kept_under_the_source(self, client, source, media_storage, httpserver, settings,
                                                           photo_png):
        settings.ORIGIN_ALLOW_LOOPBACK = True
        httpserver.expect_request("/logo.png").respond_with_data(photo_png, content_type="image/png")
        get_ok(client, f"w=200&mark={httpserver.url_for('/logo.png')}&mark-w=30")
        assert [m.split("/")[:2] for m in stored(media_storage, "marks")] == [["marks", str(source.id)]]
        get_ok(client, f"w=210&mark={httpserver.url_for('/logo.png')}&mark-w=30")
        assert len(httpserver.log) == 1  # Fetched once, then read from storage.
        from rendering.store import render_purge

        render_purge(source=source)
        assert stored(media_storage, "marks") == set()


def s3_names(s3_storage) -> set[str]:
    client, bucket = s3_storage
    return {obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])}


@pytest.fixture(params=["local", "s3"])
def objects(request, media_storage):
    """The names of every stored object, on local storage or on S3 (moto over HTTP)."""
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_storage")
        return lambda: s3_names(s3)
    return lambda: {str(p.relative_to(media_storage)) for p in media_storage.rglob("*") if p.is_file()}


def fill_source(client, source):
    """A cutout, its renders, plain renders and a mark, all stored for `source`."""
    base = f"/render/{source.slug}/astronaut.jpg?"
    bg_remove_job_process(job_id=client.get(base + "bg-remove=true").json()["job"])
    for query in ("bg-remove=true", "bg-remove=true&fm=webp", "w=50", "w=60&mark=chelsea.png&mark-w=20"):
        assert client.get(base + query).status_code == 200, query


class TestSourceDelete:
    def test_deleting_a_source_through_the_api_deletes_its_objects(self, client, source, objects,
                                                                    django_capture_on_commit_callbacks):
        other = SourceFactory(account=source.account, slug="acme-other")
        fill_source(client, source)
        assert client.get(f"/render/{other.slug}/chelsea.png?w=30").status_code == 200
        before = objects()
        mine = {n for n in before if n.split("/")[1] == str(source.id)}
        assert {n.split("/")[0] for n in mine} == {"renders", "cutouts", "marks"}
        _, key = api_key_create(account=source.account, scopes=["read", "write"], name="k")
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        with django_capture_on_commit_callbacks(execute=True):
            assert api.delete(f"/api/v1/sources/{source.slug}").status_code == 204
        assert objects() == before - mine and objects()  # The other source's render stays.
        assert not Render.objects.filter(source_id=source.id).exists()
        assert client.get(f"/render/{other.slug}/chelsea.png?w=30").status_code == 200

    def test_deleting_an_account_deletes_every_source_objects(self, client, source, objects,
                                                              django_capture_on_commit_callbacks):
        second = SourceFactory(account=source.account, slug="acme-second")
        fill_source(client, source)
        assert client.get(f"/render/{second.slug}/chelsea.png?w=30").status_code == 200
        survivor = SourceFactory(account=AccountFactory(slug="survivor"), slug="survivor-photos")
        assert client.get(f"/render/{survivor.slug}/chelsea.png?w=30").status_code == 200
        kept = {n for n in objects() if n.split("/")[1] == str(survivor.id)}
        with django_capture_on_commit_callbacks(execute=True):
            Account.objects.get(pk=source.account_id).delete()
        assert objects() == kept and len(kept) == 1

    def test_a_rolled_back_delete_keeps_the_objects(self, client, source, objects, django_capture_on_commit_callbacks):
        get_ok(client, "w=50")
        before = objects()
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(RuntimeError), transaction.atomic():
                source.delete()
                raise RuntimeError("rolled back")
        assert objects() == before and Render.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_objects_go_when_the_delete_really_commits(client, source, media_storage):
    """No test-wrapped transaction: the objects are deleted by the commit itself."""
    fill_source(client, source)
    assert {p.relative_to(media_storage).parts[0] for p in media_storage.rglob("*") if p.is_file()} == {
        "renders", "cutouts", "marks"}
    _, key = api_key_create(account=source.account, scopes=["write"], name="k")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.delete(f"/api/v1/sources/{source.slug}").status_code == 204
    assert [p for p in media_storage.rglob("*") if p.is_file()] == []


def test_identical_bytes_of_two_images_share_one_object_until_both_are_purged(client, source, origin_root,
                                                                               media_storage):
    from rendering.store import render_purge

    (origin_root / "photos" / "copy.jpg").write_bytes((origin_root / "photos" / "astronaut.jpg").read_bytes())
    first = get_ok(client, "w=70")
    second = get_ok(client, "w=70", path="copy.jpg")
    assert first.content == second.content
    names = set(Render.objects.values_list("storage_name", flat=True))
    assert len(names) == 1 and stored(media_storage) == names
    render_purge(source=source, path="astronaut.jpg")
    assert stored(media_storage) == names  # copy.jpg's render still refers to it.
    assert get_ok(client, "w=70", path="copy.jpg").content == first.content
    render_purge(source=source, path="copy.jpg")
    assert stored(media_storage) == set()


def test_the_loser_of_a_row_race_keeps_the_winners_object(source, media_storage):
    """Two writers of one key store the same bytes under the same name: the one whose insert
    fails must not delete the object the other's row refers to."""
    from rendering.store import render_store

    data = b"the same bytes"
    kwargs = {"key": "k" * 64, "source": source, "path": "a.png", "data": data, "content_type": "image/png"}
    winner = render_store(**kwargs)
    with transaction.atomic():
        loser = render_store(**kwargs)  # Its insert hits the unique key.
    assert loser.pk == winner.pk and stored(media_storage) == {winner.storage_name}
