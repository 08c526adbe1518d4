"""The OpenAI-compatible embeddings ingress: ``POST /v1/embeddings``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from junction.formats.embeddings import decode_embedding_request, encode_embedding_response
from junction.ingress.openai import caller, new_call
from junction.pipeline import Gateway


def embeddings_routes(gateway: Gateway) -> list[HTTPRouteHandler]:
    @post("/v1/embeddings", summary="OpenAI Embeddings, for every provider that has them", status_code=200)
    async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
        principal = await caller(gateway, request)
        body = decode_embedding_request(await request.body())
        call = new_call(request, "embeddings", principal, body)
        response = await gateway.embed(call)
        return Response(encode_embedding_response(response), media_type="application/json",
                        headers=call.response_headers)

    return [embeddings]
