"""Drills: scenario loader, telemetry generator, runner, scorer and the scenario library."""
