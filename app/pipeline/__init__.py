"""The request pipeline: authenticate, then each call through the ordered stages
(ordered by :mod:`junction.plugins.ordering`, composed by :mod:`.chain`) to the attempt loop (:mod:`.attempts`), whose
deployment order comes from the routing policy. :class:`Gateway` (:mod:`.gateway`) runs it.
The contracts stages and policies implement are in :mod:`junction.plugins.stages`."""

from junction.pipeline.gateway import AUTH_DISABLED_PRINCIPAL, Gateway, close_streams

__all__ = ["AUTH_DISABLED_PRINCIPAL", "Gateway", "close_streams"]
