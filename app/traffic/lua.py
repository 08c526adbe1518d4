"""Lua the traffic scripts share.

Redis's clock (so nodes whose clocks differ still share one timeline), read once a script:
``now`` (ms since the epoch, a number, for arithmetic) and ``at``, the same as a string, for the
commands the script sends. A Lua number given to ``redis.call``, or joined to a string, is
formatted with printf's ``%.17g``, and Redis 7.0 spent more of its time there (about 5%, ``perf``)
than on several of the commands themselves; so the scripts hand Redis strings wherever one is at
hand (their arguments, ``at``, literals) and keep numbers for comparing and adding. ``at`` is
built from ``TIME``'s two strings, the microseconds cut to whole milliseconds (zero-padded to six
digits first), so no number is formatted to make it.
"""

NOW = """local clock = redis.call('TIME')
local at = clock[1] .. string.sub('000000' .. clock[2], -6, -4)
local now = tonumber(at)
"""
