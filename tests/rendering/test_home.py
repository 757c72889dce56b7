import io
import re

import pytest
from django.core.management import call_command
from PIL import Image

from cutouts.services import bg_remove_job_process
from sources.models import Source
from tests.conftest import ROOT
from tests.factories import SourceFactory

CUTOUT = "/render/demo/astronaut.jpg?bg-remove=true&w=300"
ON_COLOUR = "/render/demo/astronaut.jpg?bg-remove=true&bg=F2C14E&w=300"
COMPOSITE = ("/render/demo/aitzgorri.jpg?w=600&mark=astronaut.jpg%3Fbg-remove%3Dtrue%26w%3D240"
             "&mark-align=bottom,center")


@pytest.fixture
def demo(db, settings):
    """The demo source as `make run` makes it: bootstrap_demo, serving the committed demo/origin/."""
    settings.ORIGIN_LOCAL_ROOT = ROOT / "demo"
    call_command("bootstrap_demo", stdout=io.StringIO())
    return Source.objects.get(slug="demo")


def example_sources(page: str) -> list[str]:
    return [src.replace("&amp;", "&") for src in re.findall(r'<img data-cutout src="([^"]+)"', page)]


@pytest.mark.django_db
def test_home_shows_the_demo_files_before_and_after(client, account, origin_root):
    SourceFactory(account=account, slug="demo", kind="local", local_path="photos")
    (origin_root / "photos" / "notes.txt").write_text("not an image")
    page = client.get("/").content.decode()
    assert '/render/demo/astronaut.jpg?bg-remove=true&amp;auto=format' in page
    assert '/render/demo/chelsea.png"' in page
    assert "notes.txt" not in page
    assert "Three examples" not in page  # This folder has no landscape to put the cutout in front of.


@pytest.mark.django_db
def test_home_without_a_demo_source(client):
    response = client.get("/")
    assert response.status_code == 200 and "/admin/" in response.content.decode()


def test_home_shows_the_three_examples_with_urls_to_copy(client, demo):
    page = client.get("/").content.decode()
    assert example_sources(page)[:3] == [CUTOUT, ON_COLOUR, COMPOSITE]
    for url in (CUTOUT, ON_COLOUR, COMPOSITE):
        assert f"<code>http://testserver{url.replace('&', '&amp;')}</code>" in page
    assert '/render/demo/aitzgorri.jpg"' in page  # The landscape is in the file list too.


def test_each_example_answers_then_renders_the_product_texts_pictures(client, demo):
    responses = [client.get(url) for url in (CUTOUT, ON_COLOUR, COMPOSITE)]
    assert all(r.status_code in (200, 202) for r in responses), [(r.status_code, r.content[:200]) for r in responses]
    job = next(r.json()["job"] for r in responses if r.status_code == 202)
    assert bg_remove_job_process(job_id=job).status == "done"

    cutout, on_colour, composite, landscape = (
        Image.open(io.BytesIO(client.get(url).content)).convert("RGBA")
        for url in (CUTOUT, ON_COLOUR, COMPOSITE, "/render/demo/aitzgorri.jpg?w=600"))
    assert cutout.size == on_colour.size == (300, 300)
    assert cutout.getpixel((294, 5))[3] == 0 and cutout.getpixel((150, 290))[3] >= 200
    assert on_colour.getpixel((294, 5)) == (0xF2, 0xC1, 0x4E, 255)
    assert composite.size == landscape.size and composite.width == 600

    def near(a, b):
        return max(abs(x - y) for x, y in zip(a[:3], b[:3])) <= 12
    # The landscape stays as it is at the top corner; at the bottom centre the woman stands in front.
    assert near(composite.getpixel((8, 8)), landscape.getpixel((8, 8)))
    assert not near(composite.getpixel((300, 385)), landscape.getpixel((300, 385)))


def test_examples_are_signed_when_the_demo_source_requires_it(client, demo):
    Source.objects.filter(pk=demo.pk).update(require_signature=True, secure_tokens=["t0k"])
    urls = example_sources(client.get("/").content.decode())[:3]
    assert [url.split("&s=")[0] for url in urls] == [CUTOUT, ON_COLOUR, COMPOSITE]
    assert all(re.search(r"&s=[0-9a-f]{32}$", url) for url in urls)
    assert all(client.get(url).status_code in (200, 202) for url in urls)
