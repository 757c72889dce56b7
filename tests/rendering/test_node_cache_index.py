"""The node cache's parts in one process: bytes checked on every read, the index ended by the cache
generation, the bound kept by the sweep (tests/rendering/test_node_cache.py runs them on the stack)."""

import hashlib
import os
import time

import pytest

from core import generation
from rendering import node_cache


@pytest.fixture
def folder(settings, tmp_path):
    settings.RENDER_NODE_CACHE_DIR = tmp_path / "node-cache"
    settings.RENDER_NODE_CACHE_BYTES = 100_000
    return settings.RENDER_NODE_CACHE_DIR


def etag_of(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'


def test_bytes_are_served_only_whole_and_unchanged(folder):
    data = os.urandom(5000)
    node_cache.node_cache_keep(etag=etag_of(data), data=data)
    assert node_cache.node_cache_read(etag=etag_of(data), size=len(data)) == data
    (path,) = (folder / "blobs").glob("*/*")
    for damaged in (data[:4000], data[:-1] + bytes([data[-1] ^ 0x80]), data + b"x"):
        path.write_bytes(damaged)
        assert node_cache.node_cache_read(etag=etag_of(data), size=len(data)) is None
        assert not path.exists()
    node_cache.node_cache_keep(etag=etag_of(data), data=data[:10])  # Not the render's bytes: not kept.
    assert not list((folder / "blobs").glob("*/*"))


def test_an_index_entry_is_used_only_under_the_generation_it_was_written_under(folder):
    key = "ab" * 32
    generation.generation_observe(12345)
    generation.generation_begin()
    try:
        node_cache.node_cache_index(key=key, row={"id": 1})
        assert node_cache.node_cache_render(key=key) == {"id": 1}
        generation.generation_observe(67890)  # A purge or a change, anywhere: the value moved.
        generation.generation_begin()
        assert node_cache.node_cache_render(key=key) is None
        generation.generation_observe(None)  # The value cannot be read: nothing is trusted.
        generation.generation_begin()
        assert node_cache.node_cache_render(key=key) is None
    finally:
        generation.generation_end()


def test_writes_past_the_bound_evict_the_least_recently_used(folder):
    entries = []
    for i in range(30):
        data = os.urandom(9000)
        node_cache.node_cache_keep(etag=etag_of(data), data=data)
        entries.append(data)
        if i == 0:
            path = next((folder / "blobs").glob("*/*"))
            os.utime(path, (time.time() + 3600, time.time() + 3600))  # The first, used most recently.
        assert node_cache.node_cache_size() <= 100_000
    assert node_cache.node_cache_read(etag=etag_of(entries[0]), size=9000) == entries[0]
    assert node_cache.node_cache_read(etag=etag_of(entries[1]), size=9000) is None
    assert node_cache.node_cache_read(etag=etag_of(entries[-1]), size=9000) == entries[-1]
    node_cache.node_cache_keep(etag=etag_of(b"y" * 30_000), data=b"y" * 30_000)  # Over a quarter: not kept.
    assert node_cache.node_cache_read(etag=etag_of(b"y" * 30_000), size=30_000) is None
