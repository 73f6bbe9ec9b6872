"""Who owns a running turn, abort/answer delivery, and event logs: in memory and on Redis.

``base`` holds the two protocols (``Coordinator``, ``EventLog``) and their records;
``holding`` is the owner's heartbeat over any coordinator; ``memory`` is one process (the
default, nothing to install); ``redis_*`` share the state between processes as
``../shared/design/run-coordination.md`` lays out. Imports only ``opencode.core`` (STYLE:
``core`` <- ``coordination`` <- ``schemas``): nothing here knows HTTP, the store or the events.
"""
