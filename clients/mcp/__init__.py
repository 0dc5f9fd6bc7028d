"""serverprep for AI agents: a Model Context Protocol server that is one more client of the gRPC API."""
