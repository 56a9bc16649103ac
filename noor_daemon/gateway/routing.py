"""From the model name a client sends to the upstream that serves it."""

from __future__ import annotations

from dataclasses import dataclass

from noor_daemon.config import Config
from noor_daemon.gateway import errors
from noor_daemon.gateway.upstreams import Upstream

# Which provider kinds can answer which API family without translation.
FAMILY_KINDS = {"openai": {"openai", "simulator"}, "anthropic": {"anthropic", "simulator"}}


@dataclass(frozen=True, slots=True)
class Route:
    upstream: Upstream
    model: str
    """The model name the upstream knows it by."""
    weight: float = 1.0
    priority: int = 0


class Router:
    def __init__(self, config: Config, upstreams: dict[str, Upstream]) -> None:
        self._routes: dict[str, list[Route]] = {}
        for model in config.models:
            self._routes[model.name] = sorted(
                (Route(upstreams[r.provider], r.model, r.weight, r.priority) for r in model.routes),
                key=lambda route: route.priority,
            )

    @property
    def model_names(self) -> list[str]:
        return list(self._routes)

    def knows(self, model: str) -> bool:
        return model in self._routes

    def routes(self, model: str, family: str) -> list[Route]:
        """The routes able to serve `model` on this API family, best first."""
        routes = self._routes.get(model)
        if routes is None:
            raise errors.unknown_model(model)
        usable = [r for r in routes if r.upstream.kind in FAMILY_KINDS[family]]
        if not usable:
            other = "/v1/chat/completions" if family == "anthropic" else "/v1/messages"
            raise errors.bad_request(
                f"The model `{model}` is served by a provider that does not speak this API; call it through {other}.",
                param="model",
                code="model_api_mismatch",
            )
        return usable
