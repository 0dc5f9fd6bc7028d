"""Values the service and its clients share: where to find the service, the error domain, the environment."""

#: Where the service listens, and where clients look for it, unless told otherwise.
DEFAULT_ADDRESS = "127.0.0.1:50051"
#: google.rpc.ErrorInfo.domain of every serverprep error.
ERROR_DOMAIN = "serverprep.dev"

ENV_ADDRESS = "SERVERPREP_ADDRESS"
ENV_TOKEN = "SERVERPREP_TOKEN"
ENV_TLS_CA = "SERVERPREP_TLS_CA"
ENV_TLS_CERT = "SERVERPREP_TLS_CERT"
ENV_TLS_KEY = "SERVERPREP_TLS_KEY"
