"""The real-time hub: WebSocket sessions, topics, fan-out and the backplane."""
