"""The embeddings part of the conformance kit, mixed into
:class:`~junction.testing.conformance.ProviderConformance`.

A provider either has embeddings (``supports_embeddings = True`` and an ``embedding_model`` its
fake serves) or it does not, and then ``POST /v1/embeddings`` to it must be a clear 400. The
checks need nothing from the fake beyond serving embeddings: vectors are compared between calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pytest

if TYPE_CHECKING:
    import openai


class EmbeddingsConformance:
    provider: ClassVar[str]
    supports_embeddings: ClassVar[bool] = False
    #: An embeddings model id the fake serves (without the provider prefix).
    embedding_model: ClassVar[str | None] = None

    def _embedding_model(self) -> str:
        if not self.supports_embeddings:
            pytest.skip(f"{self.provider} does not offer embeddings")
        assert self.embedding_model, "set embedding_model when supports_embeddings is true"
        return f"{self.provider}/{self.embedding_model}"

    def test_embeddings_one_vector_per_input_in_order(self, client: openai.OpenAI, fake: Any) -> None:
        model = self._embedding_model()
        both = client.embeddings.create(model=model, input=["first text", "second text"],
                                        encoding_format="float")
        assert [item.index for item in both.data] == [0, 1]
        first, second = (item.embedding for item in both.data)
        assert first != second and len(first) == len(second) > 0
        alone = client.embeddings.create(model=model, input="second text", encoding_format="float")
        assert alone.data[0].embedding == second

    def test_embeddings_base64_decodes_to_the_same_vector(self, client: openai.OpenAI, fake: Any) -> None:
        model = self._embedding_model()
        floats = client.embeddings.create(model=model, input="same text", encoding_format="float")
        decoded = client.embeddings.create(model=model, input="same text")  # the SDK asks for base64
        assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)

    def test_embeddings_dimensions(self, client: openai.OpenAI, fake: Any) -> None:
        model = self._embedding_model()
        result = client.embeddings.create(model=model, input="short", dimensions=4, encoding_format="float")
        assert len(result.data[0].embedding) == 4

    def test_no_embeddings_is_a_clear_400(self, client: openai.OpenAI, fake: Any) -> None:
        import openai

        if self.supports_embeddings:
            pytest.skip(f"{self.provider} offers embeddings")
        with pytest.raises(openai.BadRequestError) as raised:
            client.embeddings.create(model=f"{self.provider}/any-model", input="x")
        assert raised.value.code == "embeddings_not_supported"
