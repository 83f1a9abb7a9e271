"""Every tool module, imported by name: importing this module completes the one registry.

A new tool module is added here; a renamed or missing one fails at import, loudly.
"""

from __future__ import annotations

from firebreak.tools import changes, flags, incidents, logs, memory_search, metrics, sentry, traces

MODULES = (logs, metrics, traces, changes, flags, sentry, incidents, memory_search)
