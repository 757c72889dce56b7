import pytest

from tests.factories import SourceFactory


@pytest.mark.django_db
def test_home_shows_the_demo_files_before_and_after(client, account, origin_root):
    SourceFactory(account=account, slug="demo", kind="local", local_path="photos")
    (origin_root / "photos" / "notes.txt").write_text("not an image")
    page = client.get("/").content.decode()
    assert '/render/demo/astronaut.jpg?bg-remove=true&amp;auto=format' in page
    assert '/render/demo/chelsea.png"' in page
    assert "notes.txt" not in page


@pytest.mark.django_db
def test_home_without_a_demo_source(client):
    response = client.get("/")
    assert response.status_code == 200 and "/admin/" in response.content.decode()
