"""The investigator: a pydantic-ai agent, its report schema and its models."""
