"""Provider kinds: what each speaks, where it usually listens, and which of the API formats it serves.

A provider's `kind` is a protocol (`openai`, `anthropic`, `azure`, `simulator`) or a preset of an
OpenAI-compatible server people run (`ollama`, `vllm`, …), which is the `openai` protocol with a
default `base_url` and the formats that server is known to serve. A call in a format its provider
serves is relayed as it is; any other of the three conversational formats (`chat`, `responses`,
`messages`) is translated. A provider that answers 404 to a format it was assumed to serve is
remembered as not serving it (the gateway's upstream keeps that, not this table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Protocol = Literal["openai", "anthropic", "azure", "simulator"]

FORMAT_PATHS = {
    "chat": "chat/completions",
    "responses": "responses",
    "messages": "messages",
    "count_tokens": "messages/count_tokens",
    "completions": "completions",
    "embeddings": "embeddings",
}
"""A format's name in the config → the endpoint under /v1 that serves it."""

Format = Literal["chat", "responses", "messages", "count_tokens", "completions", "embeddings"]

CONVERSATION_FORMATS = ("chat", "responses", "messages")
"""The formats translated into one another."""


@dataclass(frozen=True)
class Kind:
    protocol: Protocol
    formats: tuple[Format, ...]
    base_url: str | None = None
    """Where the server listens by default (a local server's usual port, a service's API)."""
    title: str = ""


_OPENAI_SERVER = ("chat", "completions", "embeddings")

KINDS: dict[str, Kind] = {
    "openai": Kind("openai", ("chat", "responses", "completions", "embeddings"), "https://api.openai.com/v1", "OpenAI"),
    "anthropic": Kind("anthropic", ("messages", "count_tokens"), "https://api.anthropic.com", "Anthropic"),
    "azure": Kind("azure", ("chat", "completions", "embeddings"), None, "Azure OpenAI"),
    "simulator": Kind("simulator", tuple(FORMAT_PATHS), None, "the built-in simulator"),
    # OpenAI-compatible servers and services (the openai protocol with their defaults).
    "ollama": Kind("openai", (*_OPENAI_SERVER, "responses", "messages"), "http://127.0.0.1:11434/v1", "Ollama"),
    "vllm": Kind("openai", (*_OPENAI_SERVER, "responses", "messages"), "http://127.0.0.1:8000/v1", "vLLM"),
    "llamacpp": Kind("openai", (*_OPENAI_SERVER, "messages"), "http://127.0.0.1:8080/v1", "llama.cpp's llama-server"),
    "lmstudio": Kind("openai", (*_OPENAI_SERVER, "responses"), "http://127.0.0.1:1234/v1", "LM Studio"),
    "openrouter": Kind("openai", ("chat", "completions", "responses"), "https://openrouter.ai/api/v1", "OpenRouter"),
    "groq": Kind("openai", ("chat", "responses"), "https://api.groq.com/openai/v1", "Groq"),
    "mistral": Kind("openai", ("chat", "embeddings"), "https://api.mistral.ai/v1", "Mistral"),
    "deepseek": Kind("openai", ("chat",), "https://api.deepseek.com/v1", "DeepSeek"),
    "gemini": Kind("openai", ("chat", "embeddings"), "https://generativelanguage.googleapis.com/v1beta/openai", "Google Gemini (OpenAI-compatible endpoint)"),
}

KindName = Literal[
    "openai", "anthropic", "azure", "simulator",
    "ollama", "vllm", "llamacpp", "lmstudio", "openrouter", "groq", "mistral", "deepseek", "gemini",
]

AZURE_API_VERSION = "2024-10-21"
"""Azure OpenAI's GA data-plane version used when a provider names none."""
