"""A fake Gemini Developer API, built from Google's API reference for ``generateContent``,
``streamGenerateContent?alt=sse``, ``batchEmbedContents`` and ``models.list``.

It checks requests the way the real API does (the ``x-goog-api-key`` header, known fields only,
non-empty parts holding exactly one kind of data, base64 inline data, one function response per
function call of the previous turn, thought signatures sent back on function-call parts) and
answers with realistic JSON and SSE: text in small pieces, each function call in its own event,
usage metadata growing as the stream goes. It satisfies the conformance kit's
:class:`~junction.testing.conformance.ConformanceUpstream`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from typing import Any

from aiohttp import web

from junction.testing.conformance import Reply, SeenRequest, hold_until_disconnected
from junction.testing.upstream import FakeUpstream
from tests.fakes.embedding_vectors import fake_vector

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DATA_FIELDS = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_PART_FIELDS = set(_DATA_FIELDS) | {"thought", "thoughtSignature", "videoMetadata"}
_TOP_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
}
_GENERATION_FIELDS = {
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "candidateCount",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
}
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_SIGNATURE = "c2lnbmF0dXJlLW9mLWEtdGhvdWdodA=="


class InvalidArgument(Exception):
    """A request the real API answers with 400 INVALID_ARGUMENT."""


def gemini_error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
            **({"details": details} if details else {}),
        }
    }


class FakeGemini(FakeUpstream):
    def __init__(
        self,
        api_key: str = "gemini-test-key",
        *,
        require_signatures: bool = True,
        models: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        #: Like Gemini 3: a function call sent back without the signature it came with is a 400.
        self.require_signatures = require_signatures
        self.models = models or ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-embedding-001", "imagen-4.0"]
        self.replies: list[Reply] = []
        #: When set, the next answer ends as Gemini's do when the model writes an invalid call: a
        #: candidate with no content, finishReason MALFORMED_FUNCTION_CALL and this finishMessage.
        self.malformed_call: str | None = None

    @property
    def base_url(self) -> str:
        return self.url

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1beta/{target:.+}", self.dispatch), web.get("/v1beta/models", self.list_models)]

    # --- ConformanceUpstream ------------------------------------------------------------------

    def reset(self) -> None:
        super().reset()
        self.replies.clear()
        self.malformed_call = None

    def queue_reply(self, reply: Reply) -> None:
        self.replies.append(reply)

    def queue_error(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        if status == 401:  # Gemini reports a bad key as a 400 with a reason, not as a 401
            body = gemini_error(
                400,
                message,
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )
            self.fail_next(400, body)
            return
        details = None
        if retry_after is not None:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}]
        self.fail_next(status, gemini_error(status, message, details))

    def last_seen(self) -> SeenRequest:
        generate = [r for r in self.requests if "Content" in r.path and "embed" not in r.path.lower()][-1]
        body = generate.json()
        model, _, method = generate.path.removeprefix("/v1beta/models/").partition(":")
        seen = SeenRequest(model=model, stream=method == "streamGenerateContent")
        for part in (body.get("systemInstruction") or {}).get("parts", []):
            seen.texts.append(part.get("text", ""))
        for content in body["contents"]:
            for part in content["parts"]:
                if "text" in part and not part.get("thought"):
                    seen.texts.append(part["text"])
                elif "inlineData" in part:
                    seen.images.append(
                        f"data:{part['inlineData']['mimeType']};base64,{part['inlineData']['data']}"
                    )
                elif "fileData" in part:
                    seen.images.append(part["fileData"]["fileUri"])
                elif "functionCall" in part:
                    seen.tool_calls.append(
                        (part["functionCall"]["name"], part["functionCall"].get("args", {}))
                    )
                elif "functionResponse" in part:
                    seen.tool_results.append(json.dumps(part["functionResponse"]["response"]))
        seen.tool_names = [
            d["name"] for tool in body.get("tools", []) for d in tool.get("functionDeclarations", [])
        ]
        config = body.get("generationConfig") or {}
        seen.json_schema = config.get("responseJsonSchema") or config.get("responseSchema")
        return seen

    # --- checks the real API makes --------------------------------------------------------------

    def _denied(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-goog-api-key") == self.api_key:
            return None
        return web.json_response(
            gemini_error(
                400,
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            ),
            status=400,
        )

    def _check_parts(self, parts: Any, where: str) -> None:
        if not isinstance(parts, list) or not parts:
            raise InvalidArgument(
                f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
            )
        for index, part in enumerate(parts):
            unknown = set(part) - _PART_FIELDS
            if unknown:
                raise InvalidArgument(
                    f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at '
                    f"'{where}.parts[{index}]': Cannot find field."
                )
            kinds = [name for name in _DATA_FIELDS if name in part]
            if len(kinds) != 1:
                raise InvalidArgument(
                    f"{where}.parts[{index}]: exactly one data field must be set, got {kinds}"
                )
            if "inlineData" in part:
                blob = part["inlineData"]
                if not blob.get("mimeType") or "data" not in blob:
                    raise InvalidArgument(
                        f"{where}.parts[{index}].inline_data: mime_type and data are required"
                    )
                try:
                    base64.b64decode(blob["data"], validate=True)
                except binascii.Error:
                    raise InvalidArgument(
                        f"Invalid value at '{where}.parts[{index}].inline_data.data' (TYPE_BYTES), "
                        "Base64 decoding failed"
                    ) from None
            if "fileData" in part and not part["fileData"].get("fileUri"):
                raise InvalidArgument(f"{where}.parts[{index}].file_data.file_uri is required")
            if "functionResponse" in part:
                response = part["functionResponse"]
                if not response.get("name") or not isinstance(response.get("response"), dict):
                    raise InvalidArgument(
                        f"{where}.parts[{index}].function_response: name and response are required"
                    )

    def _check_turns(self, contents: list[dict[str, Any]]) -> None:
        for index, content in enumerate(contents):
            if content.get("role", "user") not in ("user", "model"):
                raise InvalidArgument(f"Please use a valid role: user, model. (contents[{index}])")
            self._check_parts(content.get("parts"), f"contents[{index}]")
            calls = [p for p in content["parts"] if "functionCall" in p]
            if not calls or content.get("role") != "model":
                continue
            if self.require_signatures and "thoughtSignature" not in calls[0]:
                raise InvalidArgument(
                    f"Function call is missing a thought_signature in functionCall parts. "
                    f"(contents[{index}].parts[0])"
                )
            following = contents[index + 1] if index + 1 < len(contents) else None
            responses = [
                p["functionResponse"] for p in (following or {}).get("parts", []) if "functionResponse" in p
            ]
            if following is not None and len(responses) != len(calls):
                raise InvalidArgument(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
            for call, response in zip(calls, responses, strict=False):
                if call["functionCall"]["name"] != response["name"]:
                    raise InvalidArgument(
                        f"function response name {response['name']!r} does not match the call"
                    )

    def _check_body(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise InvalidArgument("Invalid JSON payload received.")
        unknown = set(body) - _TOP_FIELDS
        if unknown:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.'
            )
        if not body.get("contents"):
            raise InvalidArgument("* GenerateContentRequest.contents: contents is not specified")
        self._check_turns(body["contents"])
        if "systemInstruction" in body:
            self._check_parts(body["systemInstruction"].get("parts"), "system_instruction")
        for tool in body.get("tools", []):
            for declaration in tool.get("functionDeclarations", []):
                if not _FUNCTION_NAME.fullmatch(declaration.get("name", "")):
                    raise InvalidArgument(f"Invalid function name {declaration.get('name')!r}")
                if "parameters" in declaration and "parametersJsonSchema" in declaration:
                    raise InvalidArgument("parameters and parameters_json_schema are mutually exclusive")
        config = body.get("generationConfig") or {}
        unknown = set(config) - _GENERATION_FIELDS
        if unknown:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at '
                "'generation_config': Cannot find field."
            )
        if ("responseJsonSchema" in config or "responseSchema" in config) and config.get(
            "responseMimeType"
        ) != "application/json":
            raise InvalidArgument("response_mime_type must be application/json when a response schema is set")
        if "responseJsonSchema" in config and "responseSchema" in config:
            raise InvalidArgument("response_schema and response_json_schema are mutually exclusive")

    # --- handlers -------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        target = request.match_info["target"]
        name, _, method = target.partition(":")
        if not name.startswith("models/") or method not in (
            "generateContent",
            "streamGenerateContent",
            "batchEmbedContents",
        ):
            return web.json_response(gemini_error(404, f"Method not found: {target}"), status=404)
        try:
            body = json.loads(await request.read())
            if method == "batchEmbedContents":
                return self._embed(name, body)
            self._check_body(body)
        except (InvalidArgument, json.JSONDecodeError) as error:
            return web.json_response(gemini_error(400, str(error)), status=400)
        reply = self.replies.pop(0) if self.replies else Reply(text=f"echo: {self._last_text(body)}")
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return web.json_response(
                    gemini_error(400, "this fake serves streams as SSE only"), status=400
                )
            return await self._stream(request, name.removeprefix("models/"), reply)
        return web.json_response(
            self._response(name.removeprefix("models/"), reply, self._parts(reply), True)
        )

    @staticmethod
    def _last_text(body: dict[str, Any]) -> str:
        parts = body["contents"][-1]["parts"]
        return "".join(part.get("text", "") for part in parts)

    def _embed(self, name: str, body: dict[str, Any]) -> web.Response:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise InvalidArgument("* BatchEmbedContentsRequest.requests: requests is not specified")
        embeddings = []
        for index, item in enumerate(requests):
            if item.get("model") != name:
                raise InvalidArgument(f"requests[{index}].model {item.get('model')!r} must match {name!r}")
            self._check_parts(item.get("content", {}).get("parts"), f"requests[{index}].content")
            text = "".join(part.get("text", "") for part in item["content"]["parts"])
            embeddings.append({"values": fake_vector(text, item.get("outputDimensionality") or 8)})
        return web.json_response({"embeddings": embeddings})

    async def list_models(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        start = int(request.query.get("pageToken") or 0)
        page = self.models[start : start + 2]  # small pages, so the client must follow nextPageToken
        body: dict[str, Any] = {
            "models": [
                {
                    "name": f"models/{model}",
                    "displayName": model,
                    "version": "001",
                    "supportedGenerationMethods": (
                        ["embedContent", "batchEmbedContents"]
                        if "embedding" in model
                        else ["predict"]
                        if model.startswith("imagen")
                        else ["generateContent", "countTokens"]
                    ),
                }
                for model in page
            ]
        }
        if start + 2 < len(self.models):
            body["nextPageToken"] = str(start + 2)
        return web.json_response(body)

    # --- answers --------------------------------------------------------------------------------

    @staticmethod
    def _parts(reply: Reply) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
        for index, call in enumerate(reply.tool_calls):
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
            if index == 0:
                part["thoughtSignature"] = _SIGNATURE
            parts.append(part)
        return parts

    @staticmethod
    def _usage(reply: Reply, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": reply.prompt_tokens,
            "totalTokenCount": reply.prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
        }
        if final:
            answer = reply.completion_tokens - reply.reasoning_tokens
            usage.update(
                candidatesTokenCount=answer, totalTokenCount=reply.prompt_tokens + reply.completion_tokens
            )
            if reply.reasoning_tokens:
                usage["thoughtsTokenCount"] = reply.reasoning_tokens
            if reply.cached_tokens:
                usage["cachedContentTokenCount"] = reply.cached_tokens
        return usage

    def _response(self, model: str, reply: Reply, parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if final and self.malformed_call is not None:
            candidate = {"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": self.malformed_call,
                         "index": 0}
            self.malformed_call = None
        elif final:
            candidate["finishReason"] = _FINISH[reply.finish_kind]
            candidate["safetyRatings"] = [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
            ]
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(reply, final),
            "modelVersion": model,
            "responseId": "fAKeReSpOnSeId01",
        }

    async def _stream(self, request: web.Request, model: str, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events: list[list[dict[str, Any]]] = []
        text = reply.text
        events += [[{"text": text[i : i + reply.chunk_size]}] for i in range(0, len(text), reply.chunk_size)]
        events += [[part] for part in self._parts(Reply(tool_calls=reply.tool_calls))]
        events = events or [[{"text": ""}]]
        if self.malformed_call is not None:
            events.append([])  # the failed call ends the stream in an event of its own
        try:
            for index, parts in enumerate(events):
                final = index == len(events) - 1
                payload = self._response(model, reply, parts, final)
                await response.write(f"data: {json.dumps(payload)}\r\n\r\n".encode())
                if reply.hold and index == 0:
                    await hold_until_disconnected(request)
                    await response.write(b"data: {}\r\n\r\n")  # fails: the client has gone
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return response
