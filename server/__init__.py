"""The FastAPI app: webhook intake, Slack interactions, the tool-use API and the web page."""
