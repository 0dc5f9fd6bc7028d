"""The serverprep gRPC service."""
