"""Recorded incidents (../shared/specs/recorded-incident.md): real telemetry replayed, triaged and scored.

`model` reads and checks `incident.yaml`, `readers` parse the telemetry files, `replay` writes them into
the embedded stores, `run` triages one folder like a drill. Only `simulations.scorer` reads `truth`.
"""

INCIDENT_FILE = "incident.yaml"
