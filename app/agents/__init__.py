"""Agents: the tool loop that runs server-side tools between model calls (issue 11).

:mod:`junction.agents.toolbox` gathers a call's server-side tools (the bridge's ``server_tools``),
:mod:`junction.agents.http_tools` calls them behind the webhooks' SSRF guard, and
:mod:`junction.agents.loop` runs the rounds, for JSON answers and streams; the ``agents`` middleware
plugin places that loop in the pipeline, inside the admission and cache stages and around the
attempt loop.
"""
