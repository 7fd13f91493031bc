"""The composition root builds the configured embedder once and refuses a mismatched one."""

from __future__ import annotations

import dataclasses

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.errors import ConfigurationError
from gateway.ingestion.embedders import LocalEmbedder, OpenAIEmbedder
from gateway.settings import EmbeddingSettings

pytestmark = pytest.mark.integration


def test_app_builds_the_local_embedder_by_default_without_loading_the_model(settings):
    app = create_app(settings)
    assert isinstance(app.state.embedder, LocalEmbedder)
    assert app.state.embedder._model is None


def test_app_uses_the_embedder_it_is_given(settings, embedder):
    assert create_app(settings, embedder=embedder).state.embedder is embedder


def test_app_builds_an_openai_embedder_from_settings(settings):
    openai = EmbeddingSettings(kind="openai", base_url="http://embed.test/v1")
    app = create_app(dataclasses.replace(settings, embedding=openai))
    assert isinstance(app.state.embedder, OpenAIEmbedder)
    assert app.state.embedder.url == "http://embed.test/v1/embeddings"


def test_app_refuses_to_start_with_an_embedder_of_the_wrong_dimension(settings):
    class Wide:
        dimension = 768

        def embed_documents(self, texts):
            return [[0.0] * 768 for _ in texts]

        def embed_query(self, text):
            return [0.0] * 768

    with pytest.raises(ConfigurationError, match="768.*vector\\(384\\)"):
        create_app(settings, embedder=Wide())


async def test_app_shutdown_closes_the_openai_embedders_clients(settings):
    openai = EmbeddingSettings(kind="openai", base_url="http://embed.test/v1")
    app = create_app(dataclasses.replace(settings, embedding=openai))
    embedder = app.state.embedder
    async with AsyncTestClient(app) as client:
        assert (await client.get("/health/live")).status_code == 200
        assert not embedder._client.is_closed and not embedder._async_client.is_closed
    assert embedder._client.is_closed and embedder._async_client.is_closed
