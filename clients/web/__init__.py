"""``serverprep web``: a gateway that shows every server's preparation live in a browser, one more client of the gRPC API."""
