"""Lua scripts for keys that one owner holds until their TTL lapses (leases, locks).

The value of such a key is its owner's token.  Only the owner may extend or drop it: after a TTL
lapse another process may hold the key, and a plain ``PEXPIRE`` or ``DEL`` would take it from that
process.  The check and the change must be one atomic step, hence a script rather than two commands.
"""

from __future__ import annotations

#: KEYS[1] the key, ARGV[1] the owner, ARGV[2] the new TTL in milliseconds; returns 1 if extended, else 0.
EXTEND_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: KEYS[1] the key, ARGV[1] the owner; returns 1 if deleted, else 0.
DELETE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
