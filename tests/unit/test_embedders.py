"""Embedders: the local model offline, an OpenAI-compatible endpoint, and the dimension check."""

from __future__ import annotations

import json
import math
import threading

import httpx
import pytest

from gateway.errors import ConfigurationError, UnavailableError, UpstreamError
from gateway.ingestion.embedders import (
    Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
    build_embedder,
    embeddings_url,
    query_embedding,
)
from gateway.settings import EmbeddingSettings


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_local_embedder_gives_normalised_384_vectors_that_rank_related_text_higher(embedder):
    vectors = embedder.embed_documents([
        "Employees get twenty-five days of paid annual leave.",
        "The quarterly revenue report shows growth in Europe.",
    ])
    query = embedder.embed_query("How many vacation days do I have?")
    assert isinstance(embedder, Embedder)
    assert embedder.dimension == 384
    assert all(len(v) == 384 and math.isclose(math.sqrt(cosine(v, v)), 1.0, rel_tol=1e-4) for v in vectors)
    assert cosine(query, vectors[0]) > cosine(query, vectors[1])
    assert embedder.embed_documents([]) == []


def test_local_embedder_loads_its_model_once(embedder):
    assert embedder.load() is embedder.load()


def test_default_settings_build_the_local_embedder_without_loading_the_model():
    built = build_embedder(EmbeddingSettings())
    assert isinstance(built, LocalEmbedder)
    assert built._model is None


@pytest.mark.parametrize("kind", ["local", "openai"])
def test_a_dimension_the_schema_cannot_store_fails_startup_with_a_clear_message(kind):
    settings = EmbeddingSettings(kind=kind, base_url="http://embed.test/v1", dimension=1536)
    with pytest.raises(ConfigurationError) as info:
        build_embedder(settings)
    assert "GATEWAY_EMBEDDING_DIMENSION is 1536" in info.value.detail
    assert "vector(384)" in info.value.detail


def fake_endpoint(calls, *, dimension=384, status=200, body=None):
    def handler(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        calls.append((str(request.url), request.headers.get("authorization"), payload))
        if body is not None:
            return httpx.Response(status, content=body)
        data = [{"index": i, "embedding": [float(i + 1)] * dimension} for i in range(len(payload["input"]))]
        return httpx.Response(status, json={"data": list(reversed(data)), "model": payload["model"]})
    return httpx.MockTransport(handler)


def openai_settings(**overrides):
    values = {"kind": "openai", "base_url": "http://embed.test", "model": "text-embed", "api_key": "k3y",
              "batch_size": 2}
    values.update(overrides)
    return EmbeddingSettings(**values)


def test_openai_embedder_batches_orders_by_index_normalises_and_authenticates():
    calls: list = []
    embedder = OpenAIEmbedder(openai_settings(), transport=fake_endpoint(calls))
    vectors = embedder.embed_documents(["a", "b", "c"])
    assert [c[0] for c in calls] == ["http://embed.test/v1/embeddings"] * 2
    assert [c[2]["input"] for c in calls] == [["a", "b"], ["c"]]
    assert calls[0][1] == "Bearer k3y" and calls[0][2]["model"] == "text-embed"
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    assert all(math.isclose(cosine(v, v), 1.0) for v in vectors)
    assert embedder.embed_query("q") == pytest.approx([1 / math.sqrt(384)] * 384)


def test_base_url_may_be_given_with_or_without_v1():
    assert embeddings_url("https://api.example.com/v1/") == "https://api.example.com/v1/embeddings"
    assert embeddings_url("http://tei:8080") == "http://tei:8080/v1/embeddings"


def openai_embedder(transport):
    """One endpoint behind both of the embedder's clients."""
    return OpenAIEmbedder(openai_settings(), transport=transport, async_transport=transport)


async def test_openai_embedder_awaits_queries_on_the_event_loop_without_a_worker_thread():
    calls: list = []
    threads: list = []
    endpoint = fake_endpoint(calls)

    def handler(request: httpx.Request) -> httpx.Response:
        threads.append(threading.current_thread())
        return endpoint.handler(request)

    embedder = openai_embedder(httpx.MockTransport(handler))
    embed = query_embedding(embedder)
    assert await embed("q") == pytest.approx([1 / math.sqrt(384)] * 384)
    assert threads == [threading.current_thread()]
    assert calls[0][1] == "Bearer k3y" and calls[0][2] == {"model": "text-embed", "input": ["q"],
                                                          "encoding_format": "float"}
    await embedder.aclose()


async def test_a_blocking_embedder_embeds_queries_in_a_worker_thread():
    threads: list = []

    class Blocking:
        dimension = 384

        def embed_documents(self, texts):
            return [self.embed_query(t) for t in texts]

        def embed_query(self, text):
            threads.append(threading.current_thread())
            return [1.0] + [0.0] * 383

    assert await query_embedding(Blocking())("q") == [1.0] + [0.0] * 383
    assert threads and threads[0] is not threading.current_thread()


async def test_openai_embedder_refuses_vectors_of_the_wrong_size():
    embedder = openai_embedder(fake_endpoint([], dimension=1536))
    with pytest.raises(UpstreamError, match="384"):
        embedder.embed_query("q")
    with pytest.raises(UpstreamError, match="384"):
        await embedder.aembed_query("q")


@pytest.mark.parametrize(("status", "error"), [(503, UnavailableError), (429, UnavailableError),
                                               (400, UpstreamError)])
async def test_openai_embedder_failures_become_domain_errors(status, error):
    embedder = openai_embedder(fake_endpoint([], status=status, body=b"{}"))
    with pytest.raises(error):
        embedder.embed_query("q")
    with pytest.raises(error):
        await embedder.aembed_query("q")


async def test_openai_embedder_garbage_body_is_an_upstream_error():
    embedder = openai_embedder(fake_endpoint([], body=b"<html>"))
    with pytest.raises(UpstreamError, match="unreadable"):
        embedder.embed_query("q")
    with pytest.raises(UpstreamError, match="unreadable"):
        await embedder.aembed_query("q")


async def test_openai_embedder_unreachable_or_slow_endpoint_is_unavailable():
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler, message in ((timeout, "in time"), (refused, "unreachable")):
        embedder = openai_embedder(httpx.MockTransport(handler))
        with pytest.raises(UnavailableError, match=message):
            embedder.embed_query("q")
        with pytest.raises(UnavailableError, match=message):
            await embedder.aembed_query("q")


def test_local_embedder_and_tokenizer_are_safe_to_call_from_many_threads(embedder, wordpiece):
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"Passage number {n} about leave and travel." for n in range(8)]
    expected = embedder.embed_documents(texts)
    with ThreadPoolExecutor(max_workers=8) as pool:
        vectors = list(pool.map(lambda t: embedder.embed_documents([t])[0], texts))
        counts = list(pool.map(lambda t: wordpiece.count([t])[0], texts * 4))
    assert all(cosine(a, b) > 0.9999 for a, b in zip(vectors, expected, strict=True))
    assert counts == wordpiece.count(texts * 4)
